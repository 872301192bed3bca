"""The one exception tree of conea-monitor.

::

    MonitorError
    ├── ConfigError            a settings or probe-module file is wrong (names file, line, key)
    ├── PolicyError            a remediation policy is wrong (names file, line, field)
    ├── ProbeError             a probe could not be set up (bad target, unknown module)
    ├── StoreError             the store could not be read or written
    ├── ServiceError           the running service could not be reached or refused (monitor.client)
    └── ActionError            an action failed; says whether retrying may help
        ├── TemporaryActionError   retry after ``delay`` seconds (429, 5xx, timeouts, 409)
        └── PermanentActionError   retrying will not help (404, 403, refused by a check)

Library errors are wrapped where they enter (``raise ConfigError(...) from exc``) and
messages name the bad value with ``{value!r}``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error conea-monitor raises on purpose."""


class ConfigError(MonitorError):
    """A configuration file is invalid; the message names the file, line and key."""


class PolicyError(MonitorError):
    """A remediation policy is invalid; the message names the file, line and field."""


class ProbeError(MonitorError):
    """A probe request cannot be served (unknown module, disallowed target...)."""


class StoreError(MonitorError):
    """The store could not be read or written."""


class ActionError(MonitorError):
    """An action failed. Subclasses say whether a retry may help."""


class TemporaryActionError(ActionError):
    """A failure that may pass: the engine retries after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentActionError(ActionError):
    """A failure that retrying will not fix (missing object, forbidden, refused)."""


class NotConfigured(PermanentActionError):
    """A client the action needs is not configured (no credentials, no URL): a live step
    fails; a rehearsal records what it would have done without reading live state."""
