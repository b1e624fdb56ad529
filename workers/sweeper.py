"""Finds requests nobody will finish otherwise and gives each one a way to a final state.

- queued rows untouched for REQUEUE_AFTER_SECONDS (the broker lost the message, or the API died
  between commit and publish) and processing rows whose lease ran out (their worker vanished) are
  published again; the database claim keeps a duplicate from calling the LLM twice. A queued row
  counts as lost only when its partition has no lag (service/messaging/lag.py): a row merely
  waiting its turn behind a long backlog is never re-published, so a large batch cannot set off a
  re-publishing storm. Batch lines the feeder has not released yet are not touched at all;
- abandoned rows that used every attempt end as failed;
- rows older than REQUEST_TTL_SECONDS end as expired;
- after the broker lost its state (the monitor starts a new epoch, or a partition's offsets went
  back), every queued row not touched since then is published again at once, without waiting
  REQUEUE_AFTER_SECONDS and without the lag check (the lag of a re-created topic says nothing):
  its message may be gone;
- the retention purge (service/usecases/retention.py) removes, a bounded share per sweep, what
  outlived RETENTION_DAYS.
While the broker is known to be down it does nothing (publishing would go nowhere).
Rows it finishes get their completion events (schemas/events.py) once the sweep is committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring
from service.config import Settings
from service.db import answer_cache_repo
from service.db import requests_repo as repo
from service.db.models import RequestStatus, utcnow
from service.errors import ServiceUnavailable
from service.logging import throttled
from service.messaging.kafka import RequestPublisher
from service.messaging.lag import drained_partitions, partition_of
from service.messaging.monitor import BrokerMonitor
from service.schemas.envelope import RequestEnvelope
from service.usecases import retention

_BATCH = 500
# Rows looked at per sweep: waiting rows (partition with lag) are skipped, not taken back, so they
# would fill a window of _BATCH for good; a wider look keeps lost rows behind them reachable.
_CANDIDATES = 20 * _BATCH


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
            await self.purge_once()
            interval = self._settings.sweep_interval_seconds
            if self._recover_before is not None:
                interval = min(interval, 1.0)  # recovery was cut short: try again soon
            waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()

    async def purge_once(self) -> int:
        """The retention purge, a bounded share per sweep (its own short units of work; it needs
        the database only, so it runs while the broker is down too)."""
        budget = self._settings.purge_max_rows_per_sweep
        if budget <= 0:
            return 0
        try:
            return (await retention.purge(self._sessions, self._settings, max_rows=budget)).rows
        except Exception as exc:
            throttled("purge-failed").warning("purge failed ({}: {}); trying again", type(exc).__name__, exc)
            return 0

    async def recover(self) -> int:
        before = self._recover_before
        if before is None:
            return 0
        total = 0
        try:
            while True:
                async with self._sessions() as session:
                    candidates = await repo.requeue_candidates(session, stale_before=before, limit=_BATCH)
                    rows = await repo.take_back_for_requeue(
                        session, ids=[c[0] for c in candidates], stale_before=before
                    )
                    await session.commit()
                await self._publish(rows)
                total += len(rows)
                if len(candidates) < _BATCH:
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
            stale_before = now - timedelta(seconds=self._settings.requeue_after_seconds)
            candidates = await repo.requeue_candidates(session, stale_before=stale_before, limit=_CANDIDATES)
            # Answers past their TTL are never served again: drop them, or the table keeps every key.
            await answer_cache_repo.purge_expired(session, now)
            await session.commit()
        # Announced once committed: a waiter woken by an event must find the final row.
        await self._publisher.publish_events([*expired, *failed])
        for change in (*expired, *failed):
            monitoring.request_finished(change)
        ids = (await self._really_lost(candidates))[:_BATCH]
        async with self._sessions() as session:
            lost = await repo.take_back_for_requeue(session, ids=ids, stale_before=stale_before)
            await session.commit()
        await self._publish(lost)
        if expired or failed or lost:
            logger.info(
                "sweep: {} expired, {} failed after lost workers, {} re-published",
                len(expired),
                len(failed),
                len(lost),
            )
        return len(lost)

    async def _publish(self, rows: Sequence[tuple[uuid.UUID, str, int, bool]]) -> None:
        now = utcnow()
        sends = [
            self._publisher.publish(
                RequestEnvelope(
                    request_id=request_id,
                    kind=kind,
                    attempt=attempts + 1,
                    trace_id=request_id.hex,
                    created_at=now,
                    published_at=now,
                ),
                self._settings.kafka_topic_requests_batch if in_batch else None,
            )
            for request_id, kind, attempts, in_batch in rows
        ]
        # All at once: the producer batches them; one at a time, a few hundred took seconds.
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def _really_lost(self, candidates: list[tuple[uuid.UUID, str, bool]]) -> list[uuid.UUID]:
        """Abandoned processing rows always; queued rows only where their partition has no lag."""
        lanes: dict[bool, tuple[int, set[int]] | None] = {}
        lost = []
        for request_id, status, in_batch in candidates:
            if status != RequestStatus.QUEUED:
                lost.append(request_id)
                continue
            if in_batch not in lanes:
                topic = (
                    self._settings.kafka_topic_requests_batch
                    if in_batch
                    else self._settings.kafka_topic_requests
                )
                lanes[in_batch] = await drained_partitions(self._settings, topic)
            lag = lanes[in_batch]
            # Lag unknown (broker unreachable): fall back to age alone, as a lost row must come back.
            if lag is None or partition_of(request_id, lag[0]) in lag[1]:
                lost.append(request_id)
        return lost
