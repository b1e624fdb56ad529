"""A database from before this session's migrations (0002) upgrades in place: rows kept, new tables added."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from alembic import command
from service.db.migrate import alembic_config, upgrade_to_head
from service.db.models import AnalysisRequest, utcnow
from service.db.session import create_engine, create_session_factory
from tests.conftest import DEFAULT_TEST_DATABASE_URL, _asyncpg_dsn
from tests.support import make_settings


async def _upgrade_keeps_rows(url: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0002")
    settings = make_settings(url, "unused")
    engine = create_engine(settings)
    request_id = uuid.uuid4()
    try:
        # Plain SQL with the columns of that time: today's models know columns added since.
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
    finally:
        await engine.dispose()
    assert kept == [request_id]
    assert "api_keys" in tables


async def test_upgrade_in_place_on_sqlite(tmp_path: Path) -> None:
    await _upgrade_keeps_rows(f"sqlite+aiosqlite:///{tmp_path / 'before.db'}")


async def test_upgrade_in_place_on_postgresql() -> None:
    server_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    name = f"gigaoffice_upgrade_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(server_url))
    except OSError:
        pytest.fail("PostgreSQL is not reachable")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await _upgrade_keeps_rows(
            make_url(server_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
