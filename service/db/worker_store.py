"""The worker's hot path to request rows: claim, complete, fail, release — one statement each.

The statements are requests_repo's (built once on the Core table). On PostgreSQL they are compiled
once for asyncpg and run straight through an asyncpg pool: SQLAlchemy's per-execution machinery
(greenlet hop, connection events, isolation characteristics on checkout, result wrapping) cost
more CPU than the statements themselves (measured: worker CPU per request 3.2 → 1.9 ms at 100/s,
1.8 → 0.9 ms at full load). Elsewhere (SQLite, the embedded default) the same statements run
through SQLAlchemy on an autocommit engine.
Either way a step is one atomic conditional UPDATE, committed on its own, one round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Update

from service.config import Settings
from service.db import requests_repo as repo
from service.db.batching import Batcher
from service.db.errors import is_connection_error
from service.db.pgpool import on_connection, open_pool
from service.db.requests_repo import ClaimedRequest, ClaimRef, LLMAccounting, StateChange


class WorkerStore(Protocol):
    async def claim(self, request_id: uuid.UUID, lease_seconds: int) -> ClaimedRequest | None: ...

    async def complete(
        self,
        claim: ClaimRef,
        *,
        result: Any,
        category: str | None,
        accounting: LLMAccounting,
        template_version: int | None,
    ) -> StateChange | None:
        """processing → completed; a row no longer processing (cancelled) is left as it is (None)."""

    async def fail(
        self, claim: ClaimRef, *, code: str, message: str, accounting: LLMAccounting
    ) -> StateChange | None: ...

    async def release(self, claim: ClaimRef) -> bool: ...

    async def close(self) -> None: ...


class SqlWorkerStore:
    """Portable: requests_repo's functions on connections in autocommit mode."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Same pool as the engine's sessions; only these connections' mode differs.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def claim(self, request_id: uuid.UUID, lease_seconds: int) -> ClaimedRequest | None:
        async with self._engine.connect() as connection:
            return await repo.claim(connection, request_id, lease_seconds)

    async def complete(
        self,
        claim: ClaimRef,
        *,
        result: Any,
        category: str | None,
        accounting: LLMAccounting,
        template_version: int | None,
    ) -> StateChange | None:
        async with self._engine.connect() as connection:
            return await repo.complete(
                connection,
                claim,
                result=result,
                category=category,
                accounting=accounting,
                template_version=template_version,
            )

    async def fail(
        self, claim: ClaimRef, *, code: str, message: str, accounting: LLMAccounting
    ) -> StateChange | None:
        async with self._engine.connect() as connection:
            return await repo.fail(connection, claim, code=code, message=message, accounting=accounting)

    async def release(self, claim: ClaimRef) -> bool:
        async with self._engine.connect() as connection:
            return await repo.release(connection, claim)

    async def close(self) -> None:
        return None


class _Compiled:
    """A Core statement as asyncpg SQL ($n placeholders, explicit casts) and its argument order."""

    _dialect = PGDialect_asyncpg()

    def __init__(self, statement: Update) -> None:
        compiled = statement.compile(dialect=self._dialect)
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        self._defaults = compiled.params  # the statement's own literals ('queued', 1, ...)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self._defaults[name] for name in self._names]


def _rows_hit(status: str) -> int:
    # asyncpg answers an UPDATE with its command tag, "UPDATE <rows>".
    return int(status.rsplit(" ", 1)[-1])


class PgWorkerStore:
    """PostgreSQL: the same statements through an asyncpg pool, prepared once per connection."""

    _claim_many = _Compiled(repo.CLAIM_MANY)
    _complete = _Compiled(repo.COMPLETE)
    _fail = _Compiled(repo.FAIL)
    _release = _Compiled(repo.RELEASE)
    _complete_id = _complete._names.index("request_id")  # where a completion row holds its id

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._claims: Batcher[tuple[uuid.UUID, int], ClaimedRequest | None] = Batcher(
            self._claim_batch, abandoned=self._release_abandoned
        )
        self._completions: Batcher[list[Any], StateChange | None] = Batcher(self._complete_batch)

    @classmethod
    async def open(cls, database_url: str, size: int) -> PgWorkerStore:
        return cls(await open_pool(database_url, size))

    async def claim(self, request_id: uuid.UUID, lease_seconds: int) -> ClaimedRequest | None:
        # Claims arriving together (a fetched batch of messages) share one statement and commit.
        return await self._claims.call((request_id, lease_seconds))

    async def _release_abandoned(self, claimed: ClaimedRequest | None) -> None:
        # Its handler was cancelled (shutdown) while the claim ran: hand the row back for redelivery.
        if claimed is not None:
            await self.release(claimed.ref)

    async def _claim_batch(self, items: list[tuple[uuid.UUID, int]]) -> list[ClaimedRequest | None]:
        request_ids = list(dict.fromkeys(request_id for request_id, _ in items))
        params = repo.claim_many_params(request_ids, max(lease for _, lease in items))
        rows = await on_connection(self._pool, "fetch", self._claim_many.sql, *self._claim_many.args(params))
        claimed = {row["id"]: ClaimedRequest(*row) for row in rows}
        # A row goes to one caller only, even when the same message was delivered twice in a batch.
        return [claimed.pop(request_id, None) for request_id, _ in items]

    async def complete(
        self,
        claim: ClaimRef,
        *,
        result: Any,
        category: str | None,
        accounting: LLMAccounting,
        template_version: int | None,
    ) -> StateChange | None:
        params = repo.complete_params(claim, result, category, accounting, template_version)
        return await self._completions.call(self._complete.args(params))

    async def _complete_batch(self, rows: list[list[Any]]) -> list[StateChange | BaseException | None]:
        # One pipelined, atomic statement batch: one commit for every request finished meanwhile.
        # RETURNING tells which rows were still theirs to finish (and what their events carry).
        try:
            changed = await on_connection(self._pool, "fetchmany", self._complete.sql, rows)
        except Exception as exc:
            if is_connection_error(exc):
                raise  # nothing was stored; every caller retries
            # All or nothing: one row the database refuses must not fail the others with it.
            return [await self._complete_one(row) for row in rows]
        by_id = {record["id"]: StateChange(*record) for record in changed}
        return [by_id.get(row[self._complete_id]) for row in rows]

    async def _complete_one(self, row: list[Any]) -> StateChange | BaseException | None:
        try:
            record = await on_connection(self._pool, "fetchrow", self._complete.sql, *row)
        except Exception as exc:
            return exc
        return StateChange(*record) if record is not None else None

    async def fail(
        self, claim: ClaimRef, *, code: str, message: str, accounting: LLMAccounting
    ) -> StateChange | None:
        params = repo.fail_params(claim, code, message, accounting)
        args = self._fail.args(params)
        record = await on_connection(self._pool, "fetchrow", self._fail.sql, *args)
        return StateChange(*record) if record is not None else None

    async def release(self, claim: ClaimRef) -> bool:
        params = repo.release_params(claim)
        args = self._release.args(params)
        return _rows_hit(await on_connection(self._pool, "execute", self._release.sql, *args)) == 1

    async def close(self) -> None:
        await self._pool.close()


async def open_worker_store(settings: Settings, engine: AsyncEngine) -> WorkerStore:
    if engine.dialect.name == "postgresql":
        return await PgWorkerStore.open(settings.database_url, settings.db_pool_size)
    return SqlWorkerStore(engine)
