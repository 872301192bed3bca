"""Logging set-up: text or JSON lines (python-json-logger); credentials are never logged.

Two filters on the handler, so every logger is covered: one masks what looks like
``password=...`` or ``Authorization: ...``; the other masks every secret value the
process has resolved, in the message and in a traceback, escaped or encoded forms too
(:class:`monitor.secrets.RedactingFilter`).
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from monitor import secrets

_SECRET = re.compile(
    r"(?i)(authorization|password|token|secret)([\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
)


class RedactingFilter(logging.Filter):
    """Masks anything that looks like ``password=...`` or ``Authorization: ...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET.search(message):
            record.msg = _SECRET.sub(r"\1\2***", message)
            record.args = None
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(secrets.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("alembic").setLevel("WARNING")
    logging.getLogger("apscheduler").setLevel("WARNING")
