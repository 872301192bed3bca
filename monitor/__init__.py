"""conea-monitor: probes, Alertmanager webhooks and safe, verified remediation.

The supported public face::

    from monitor import Settings, create_app, load_settings
"""

from __future__ import annotations

from monitor.app import create_app
from monitor.errors import (
    ActionError,
    ConfigError,
    MonitorError,
    PermanentActionError,
    PolicyError,
    ProbeError,
    StoreError,
    TemporaryActionError,
)
from monitor.settings import Settings
from monitor.settings import load as load_settings
from monitor.version import __version__

__all__ = [
    "ActionError",
    "ConfigError",
    "MonitorError",
    "PermanentActionError",
    "PolicyError",
    "ProbeError",
    "Settings",
    "StoreError",
    "TemporaryActionError",
    "__version__",
    "create_app",
    "load_settings",
]
