"""Finds requests nobody will finish otherwise and gives each one a way to a final state.

- queued rows untouched for REQUEUE_AFTER_SECONDS (the broker lost the message, or the API died
  between commit and publish) and processing rows whose lease ran out (their worker vanished) are
  published again; the database claim keeps a duplicate from calling the LLM twice. A queued row
  counts as lost only when its partition has no lag (service/messaging/lag.py): a row merely
  waiting its turn behind a long backlog is never re-published, so a large batch cannot set off a
  re-publishing storm. Batch lines the feeder has not released yet are not touched at all;
- abandoned rows that used every attempt end as failed;
- rows older than REQUEST_TTL_SECONDS end as expired.
Rows it finishes get their completion events (schemas/events.py) once the sweep is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring
from service.config import Settings
from service.db import requests_repo as repo
from service.db.models import RequestStatus, utcnow
from service.messaging.kafka import RequestPublisher
from service.messaging.lag import drained_partitions, partition_of
from service.schemas.envelope import RequestEnvelope

_BATCH = 500
# Rows looked at per sweep: waiting rows (partition with lag) are skipped, not taken back, so they
# would fill a window of _BATCH for good; a wider look keeps lost rows behind them reachable.
_CANDIDATES = 20 * _BATCH


class Sweeper:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], publisher: RequestPublisher
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("sweep failed; trying again next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._settings.sweep_interval_seconds)

    async def sweep_once(self) -> int:
        now = utcnow()
        async with self._sessions() as session:
            expired = await repo.expire_overdue(
                session, now - timedelta(seconds=self._settings.request_ttl_seconds)
            )
            failed = await repo.fail_exhausted_leases(session, self._settings.worker_max_attempts)
            stale_before = now - timedelta(seconds=self._settings.requeue_after_seconds)
            candidates = await repo.requeue_candidates(session, stale_before=stale_before, limit=_CANDIDATES)
            await session.commit()
        # Announced once committed: a waiter woken by an event must find the final row.
        await self._publisher.publish_events([*expired, *failed])
        for change in (*expired, *failed):
            monitoring.request_finished(change)
        ids = (await self._really_lost(candidates))[:_BATCH]
        async with self._sessions() as session:
            lost = await repo.take_back_for_requeue(session, ids=ids, stale_before=stale_before)
            await session.commit()
        for request_id, kind, attempts, in_batch in lost:
            await self._publisher.publish(
                RequestEnvelope(
                    request_id=request_id,
                    kind=kind,
                    attempt=attempts + 1,
                    trace_id=request_id.hex,
                    created_at=now,
                    published_at=utcnow(),
                ),
                self._settings.kafka_topic_requests_batch if in_batch else None,
            )
        if expired or failed or lost:
            logger.info(
                "sweep: {} expired, {} failed after lost workers, {} re-published",
                len(expired),
                len(failed),
                len(lost),
            )
        return len(lost)

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
