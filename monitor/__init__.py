"""conea-monitor: probes, Alertmanager webhooks and safe, verified remediation.

The supported public face::

    from monitor import Settings, create_app, load_settings

``create_app`` is imported on first use (PEP 562): the CLI's commands that only talk to
a running service never pay for the application, the engine and everything behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from monitor.app import create_app

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


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from monitor.app import create_app

        return create_app
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
