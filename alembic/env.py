"""Alembic environment: async engine from Settings (or the URL a caller put in the config)."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection

from alembic import context
from service.config import get_settings
from service.db.migrate import translate_old_revision_ids
from service.db.models import Base
from service.db.session import create_engine

target_metadata = Base.metadata


def _do_run(connection: Connection) -> None:
    # In a transaction of its own: Alembic treats a connection already in a transaction as the
    # caller's, and would then leave the migrations uncommitted.
    if connection.in_transaction():
        translate_old_revision_ids(connection)
    else:
        with connection.begin():
            translate_old_revision_ids(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.attributes.get("database_url") or get_settings().database_url
    engine = create_engine(get_settings(), url)
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _do_run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run `python -m service migrate`.")
run_migrations_online()
