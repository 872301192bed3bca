"""Moving a test store to one Alembic revision, up or down, as the migration tests do."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from monitor.store import database


def to(db: database.Handle, revision: str, *, down: bool = False) -> None:
    """Upgrade ``db`` to ``revision`` (or downgrade with ``down``) in one transaction."""
    cfg = Config()
    cfg.set_main_option("script_location", str(database.MIGRATIONS))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
