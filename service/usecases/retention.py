"""The retention purge (docs/lifecycle.md): finished requests older than RETENTION_DAYS (or their
key's shorter `retention_days`), finished batches with their requests, lines and output/error
files, and uploaded files past their `expires_after`.

Each step is its own short unit of work deleting at most PURGE_BATCH_ROWS rows, so no lock is held
long and submits keep their latency while a purge runs. Before a request is deleted its usage is
added to the daily aggregates (usage_purged), in the same transaction, so usage and cost figures
do not change. A request that is not final is never touched, and the audit log never is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring
from service.config import Settings
from service.db import purge_repo as repo
from service.db.models import utcnow
from service.db.unit_of_work import transaction


@dataclass
class PurgeReport:
    requests: int = 0
    batches: int = 0
    files: int = 0
    transactions: int = 0
    seconds: float = 0.0
    per_kind: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.requests + self.batches + self.files

    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


Step = Callable[[AsyncSession], Awaitable[int]]


class Purge:
    """One run of the purge, over at most `max_rows` requests (None: until nothing is left)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, *, max_rows: int | None = None
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._limit = settings.purge_batch_rows
        self._max_rows = max_rows
        self.report = PurgeReport()

    def _room(self) -> int:
        if self._max_rows is None:
            return self._limit
        return max(0, min(self._limit, self._max_rows - self.report.requests))

    async def _step(self, step: Step) -> int:
        async with transaction(self._sessions) as session:
            done = await step(session)
        self.report.transactions += 1
        return done

    async def _purge_requests(self, lock: Callable[[AsyncSession, int], Awaitable[list[uuid.UUID]]]) -> bool:
        """Lock, roll up and delete requests in steps of `room`; True once `lock` finds no more."""
        while (room := self._room()) > 0:

            async def step(session: AsyncSession, room: int = room) -> int:
                ids = await lock(session, room)
                await repo.roll_up(session, ids)
                return await repo.delete_requests(session, ids)

            done = await self._step(step)
            self.report.requests += done
            monitoring.PURGED_ROWS.labels("request").inc(done)
            if done < room:
                return True
        return False

    async def _requests(self, cutoff: datetime, owner_id: str | None) -> None:
        await self._purge_requests(lambda session, room: repo.lock_finished(session, cutoff, room, owner_id))

    async def _batch(self, batch_id: uuid.UUID) -> bool:
        """Its requests in small steps, then the batch with its lines and files in one."""
        if not await self._purge_requests(
            lambda session, room: repo.lock_batch_rows(session, batch_id, room)
        ):
            return False

        async def remove(session: AsyncSession) -> int:
            if await repo.lock_batch_rows(session, batch_id, 1):
                return 0  # a request of it is still there (not final, or locked): next time
            return await repo.delete_batch(session, batch_id)

        files = await self._step(remove)
        self.report.files += files
        monitoring.PURGED_ROWS.labels("file").inc(files)
        return True

    async def _batches(self, cutoff: datetime, owner_id: str | None) -> None:
        async with self._sessions() as session:
            batch_ids = await repo.ended_batches(session, cutoff, 100, owner_id)
        for batch_id in batch_ids:
            if not await self._batch(batch_id):
                return
            self.report.batches += 1
            monitoring.PURGED_ROWS.labels("batch").inc()

    async def _files(self, now: datetime) -> None:
        while True:

            async def step(session: AsyncSession) -> int:
                return await repo.delete_files(session, await repo.expired_files(session, now, 20))

            done = await self._step(step)
            self.report.files += done
            monitoring.PURGED_ROWS.labels("file").inc(done)
            if done < 20:
                return

    async def run(self) -> PurgeReport:
        started = time.perf_counter()
        now = utcnow()
        days = self._settings.retention_days
        async with self._sessions() as session:
            shorter = await repo.shorter_retention(session, days)
        # Keys with a shorter retention first: theirs is the promise that is easier to break.
        for owner_id, own_days in shorter:
            await self._requests(now - timedelta(days=own_days), owner_id)
            await self._batches(now - timedelta(days=own_days), owner_id)
        await self._requests(now - timedelta(days=days), None)
        await self._batches(now - timedelta(days=days), None)
        await self._files(now)
        self.report.seconds = time.perf_counter() - started
        monitoring.PURGE_SECONDS.observe(self.report.seconds)
        if self.report.rows:
            logger.info(
                "purge: {} requests, {} batches, {} files in {:.2f}s ({} transactions)",
                self.report.requests,
                self.report.batches,
                self.report.files,
                self.report.seconds,
                self.report.transactions,
            )
        return self.report


async def purge(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, max_rows: int | None = None
) -> PurgeReport:
    return await Purge(sessions, settings, max_rows=max_rows).run()
