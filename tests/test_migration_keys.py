"""Databases stamped by earlier releases upgrade in place: rows kept, new tables added.

Two shapes of "earlier": a database from before this session's migrations (r0002), and databases
stamped with the bare revision ids of the time before the chain was renamed into file order ("0004"
was the head, "0006" a middle revision). Each runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from alembic import command
from service.db.migrate import OLD_REVISION_IDS, alembic_config, upgrade_to_head
from service.db.models import AnalysisRequest, utcnow
from service.db.session import create_engine, create_session_factory
from tests.conftest import DEFAULT_TEST_DATABASE_URL, _asyncpg_dsn
from tests.support import make_settings


async def _stamp(url: str, revision: str) -> None:
    engine = create_engine(make_settings(url, "unused"))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    finally:
        await engine.dispose()


async def _upgrade_keeps_rows(url: str, *, built_to: str, stamped_as: str | None = None) -> None:
    """Build the schema up to `built_to`, optionally stamp it with an old id, add a row, upgrade."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), built_to)
    if stamped_as is not None:
        await _stamp(url, stamped_as)
    settings = make_settings(url, "unused")
    engine = create_engine(settings)
    request_id = uuid.uuid4()
    try:
        # Plain SQL with the columns of r0002: today's models know columns added since.
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO requests (id, kind, status, query_text, created_at, updated_at) "
                    "VALUES (:id, 'spreadsheet', 'queued', 'q', :now, :now)"
                ),
                {"id": request_id if not url.startswith("sqlite") else request_id.hex, "now": utcnow()},
            )
        await asyncio.to_thread(upgrade_to_head, url)
        async with create_session_factory(engine)() as session:
            kept = (await session.execute(select(AnalysisRequest.id))).scalars().all()
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            version = (
                (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            )
    finally:
        await engine.dispose()
    assert kept == [request_id]
    assert {"api_keys", "feedback", "webhook_endpoints", "batches"} <= set(tables)
    assert version == [ScriptDirectory.from_config(alembic_config()).get_current_head()]


def test_files_and_ids_read_in_chain_order() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    chain = list(reversed([rev for rev in script.walk_revisions()]))
    assert [Path(rev.path).stem[:4] for rev in chain] == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    # The old ids name the first seven revisions, in their new order; none is a prefix of a new id
    # (Alembic would resolve it by prefix).
    renamed = list(OLD_REVISION_IDS.values())
    assert [rev.revision for rev in chain[: len(renamed)]] == renamed
    assert not any(rev.revision.startswith(old) for old in OLD_REVISION_IDS for rev in chain)


UPGRADES: dict[str, dict[str, str | None]] = {
    "from_r0002": {"built_to": "r0002_prompts", "stamped_as": None},
    "old_head_0004": {"built_to": "r0007_batches", "stamped_as": "0004"},
    "old_middle_0006": {"built_to": "r0004_feedback", "stamped_as": "0006"},
}


@pytest.mark.parametrize("case", list(UPGRADES))
async def test_upgrade_in_place_on_sqlite(tmp_path: Path, case: str) -> None:
    await _upgrade_keeps_rows(f"sqlite+aiosqlite:///{tmp_path / 'before.db'}", **UPGRADES[case])  # type: ignore[arg-type]


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    name = f"gigaoffice_upgrade_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(server_url))
    except OSError:
        pytest.fail("PostgreSQL is not reachable")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("case", list(UPGRADES))
async def test_upgrade_in_place_on_postgresql(empty_postgres_url: str, case: str) -> None:
    await _upgrade_keeps_rows(empty_postgres_url, **UPGRADES[case])  # type: ignore[arg-type]


async def test_old_middle_stamp_gets_the_idempotency_column_widened(empty_postgres_url: str) -> None:
    """Old "0005" (front door) precedes the key-length change: the upgrade must still apply it."""
    await asyncio.to_thread(command.upgrade, alembic_config(empty_postgres_url), "r0005_front_door")
    await _stamp(empty_postgres_url, "0005")
    await asyncio.to_thread(upgrade_to_head, empty_postgres_url)
    engine = create_engine(make_settings(empty_postgres_url, "unused"))
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(lambda sync: inspect(sync).get_columns("requests"))
    finally:
        await engine.dispose()
    length = next(getattr(c["type"], "length", None) for c in columns if c["name"] == "idempotency_key")
    assert length is not None and length > 128
