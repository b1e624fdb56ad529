"""Run Alembic migrations from code (CLI `migrate`, `up`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from alembic import command

_ROOT = Path(__file__).resolve().parents[2]

# The first revisions had bare ids ("0001".."0007") and were chained out of file order. They were
# renamed so that files and ids read in chain order; the new ids start with "r" so that an old bare id
# can never be taken for a new one (Alembic also matches an id by its prefix). A database stamped
# with an old id is translated once, before Alembic reads its version.
OLD_REVISION_IDS: dict[str, str] = {
    "0001": "r0001_requests",
    "0002": "r0002_prompts",
    "0003": "r0003_api_keys",
    "0006": "r0004_feedback",
    "0005": "r0005_front_door",
    "0007": "r0006_idempotency_key_length",
    "0004": "r0007_batches",
}


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "alembic"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def translate_old_revision_ids(connection: Connection) -> None:
    """Rewrite a version stamped with an old bare id to its new id; the caller commits."""
    if not inspect(connection).has_table("alembic_version"):
        return
    for old, new in OLD_REVISION_IDS.items():
        connection.execute(
            text("UPDATE alembic_version SET version_num = :new WHERE version_num = :old"),
            {"new": new, "old": old},
        )


def upgrade_to_head(database_url: str | None = None) -> None:
    """Blocking: call from a thread (or before the event loop starts)."""
    command.upgrade(alembic_config(database_url), "head")
