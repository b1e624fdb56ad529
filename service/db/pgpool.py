"""The asyncpg pool behind the hot paths on PostgreSQL (request_store for the API, worker_store for
workers): one way to open it, one JSONB codec, no reset round trip."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from service.db.errors import is_connection_error


async def open_pool(database_url: str, size: int) -> asyncpg.Pool:
    url = make_url(database_url)
    return await asyncpg.create_pool(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        **({"ssl": url.query["ssl"]} if "ssl" in url.query else {}),
    )


def _encode_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits, which a model's answer may contain; the standard
        # library writes them, and a stored answer must never fail on its encoding.
        return json.dumps(value, ensure_ascii=False)


async def _init_connection(connection: asyncpg.Connection) -> None:
    # JSONB in and out as Python values (what SQLAlchemy's JSON type does on the other path).
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", format="text", encoder=_encode_json, decoder=orjson.loads
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release (a round trip per statement): the hot-path statements
    are single autocommit statements that change no session state, so there is nothing to reset."""


async def on_connection(pool: asyncpg.Pool, method: str, *args: Any) -> Any:
    """`pool.<method>(*args)`, except that a connection that failed as a connection (terminated by
    the server, closed, or left mid-operation: "cannot switch to state …") is terminated instead of
    going back to the pool, so the next caller gets a fresh one and the pool heals by itself."""
    async with pool.acquire() as connection:
        try:
            return await getattr(connection, method)(*args)
        except Exception as exc:
            if is_connection_error(exc):
                connection.terminate()
            raise
