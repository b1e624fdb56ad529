"""Finds requests nobody will finish otherwise and gives each one a way to a final state.

- queued rows untouched for REQUEUE_AFTER_SECONDS (the broker lost the message, or the API died
  between commit and publish) and processing rows whose lease ran out (their worker vanished) are
  published again; the database claim keeps a duplicate from calling the LLM twice;
- abandoned rows that used every attempt end as failed;
- rows older than REQUEST_TTL_SECONDS end as expired;
- after the broker lost its state (the monitor starts a new epoch, or a partition's offsets went
  back), every queued row not touched since then is published again at once, without waiting
  REQUEUE_AFTER_SECONDS: its message may be gone.

While the broker is known to be down it does nothing (publishing would go nowhere).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db import requests_repo as repo
from service.db.models import utcnow
from service.errors import ServiceUnavailable
from service.logging import throttled
from service.messaging.kafka import RequestPublisher
from service.messaging.monitor import BrokerMonitor
from service.schemas.envelope import RequestEnvelope

_BATCH = 500


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        publisher: RequestPublisher,
        monitor: BrokerMonitor | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher
        self._monitor = monitor
        self._recover_before: datetime | None = None
        self._wake = asyncio.Event()

    def request_recovery(self, before: datetime) -> None:
        """Publish again, soon, every queued row untouched since `before`."""
        if self._recover_before is None or before > self._recover_before:
            self._recover_before = before
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()
            if self._monitor is None or self._monitor.is_up:
                try:
                    if self._recover_before is not None:
                        await self.recover()
                    else:
                        await self.sweep_once()
                except Exception as exc:
                    throttled("sweep-failed").warning(
                        "sweep failed ({}: {}); trying again next interval", type(exc).__name__, exc
                    )
            interval = self._settings.sweep_interval_seconds
            if self._recover_before is not None:
                interval = min(interval, 1.0)  # recovery was cut short: try again soon
            waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()

    async def recover(self) -> int:
        before = self._recover_before
        if before is None:
            return 0
        total = 0
        try:
            while True:
                async with self._sessions() as session:
                    rows = await repo.take_back_for_requeue(session, stale_before=before, limit=_BATCH)
                    await session.commit()
                await self._publish(rows)
                total += len(rows)
                if len(rows) < _BATCH:
                    break
        except ServiceUnavailable:
            # The rows just taken back are now newer than `before`: widen the window to cover them.
            self._recover_before = utcnow()
            raise
        if self._recover_before == before:
            self._recover_before = None
        logger.warning("recovery after broker loss: {} queued request(s) published again", total)
        return total

    async def sweep_once(self) -> int:
        now = utcnow()
        async with self._sessions() as session:
            expired = await repo.expire_overdue(
                session, now - timedelta(seconds=self._settings.request_ttl_seconds)
            )
            failed = await repo.fail_exhausted_leases(session, self._settings.worker_max_attempts)
            lost = await repo.take_back_for_requeue(
                session,
                stale_before=now - timedelta(seconds=self._settings.requeue_after_seconds),
                limit=_BATCH,
            )
            await session.commit()
        await self._publish(lost)
        if expired or failed or lost:
            logger.info(
                "sweep: {} expired, {} failed after lost workers, {} re-published", expired, failed, len(lost)
            )
        return len(lost)

    async def _publish(self, rows: Sequence[tuple[uuid.UUID, str, int]]) -> None:
        now = utcnow()
        envelopes = [
            RequestEnvelope(
                request_id=request_id,
                kind=kind,
                attempt=attempts + 1,
                trace_id=request_id.hex,
                created_at=now,
                published_at=now,
            )
            for request_id, kind, attempts in rows
        ]
        # All at once: the producer batches them; one at a time, a few hundred took seconds.
        results = await asyncio.gather(
            *(self._publisher.publish(envelope) for envelope in envelopes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
