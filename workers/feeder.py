"""The batch feeder: releases held batch lines to the batch lane fairly, and settles batches.

Fairness. Batch lines are stored held back (requests.priority = 'batch-held'); every
BATCH_FEED_INTERVAL_SECONDS the feeder tops each owner up to BATCH_OWNER_WINDOW lines in the lane
(published, not yet final), owners with the fewest lines in the lane first. So the lane holds at
most a window per owner, and a second owner's small batch is published at once. It then waits
behind at most one window of every other owner's lines, however large their batches are: an owner
is not topped up while another owner with no more lines in the lane still has some queued there,
only once those have started. (Topping it up at once let ~1.7 windows finish first: the lane's
partitions are served side by side, so lines published after the small batch, in other
partitions, ran before it.) Workers serve the lane after interactive requests
(service/messaging/runner.py lane limits).

Settling. Open batches past their completion window have their unstarted lines expired; a batch
with no line queued or running is finalised (completed, cancelled or expired) by one conditional
update, with its counts frozen and its output/error files created. No completion event is needed:
the rows are the truth.

Every worker runs a feeder; the release is a conditional update, so two feeders never publish one
line twice (at worst the lane briefly holds two windows of an owner).
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db import batches_repo as repo
from service.db.models import utcnow
from service.db.requests_repo import StateChange
from service.messaging.kafka import RequestPublisher
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.usecases import batches as batch_service


def _someone_waits_behind(
    owner: str | None, mine: repo.Occupancy, occupancy: dict[str | None, repo.Occupancy]
) -> bool:
    """Whether another owner with no more lines in the lane than `owner` still has some queued:
    lines released for `owner` now could run before them (the lane's partitions are served side
    by side). An owner with fewer lines in the lane — a small batch arriving — is never held back,
    and the held-back owner's own queued lines keep the workers busy meanwhile; lines the broker
    lost hold it back until the sweeper re-publishes them."""
    return any(
        other != owner and theirs.queued_in_lane > 0 and theirs.in_lane <= mine.in_lane
        for other, theirs in occupancy.items()
    )


class BatchFeeder:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], publisher: RequestPublisher
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.release_once()
                await self.settle_once()
            except Exception:
                logger.exception("batch feeder step failed; trying again")
            # One step per interval even while lines finish continuously: a tight loop of these
            # queries would take the CPU the workers need (a window refills within one interval).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._settings.batch_feed_interval_seconds)

    async def release_once(self) -> int:
        window = self._settings.batch_owner_window
        async with self._sessions() as session:
            occupancy = await repo.lane_occupancy(session)
            released = []
            # Owners with the fewest lines in the lane first: round-robin in effect.
            for owner, mine in sorted(occupancy.items(), key=lambda item: item[1].in_lane):
                room = min(window - mine.in_lane, mine.held)
                if room <= 0 or _someone_waits_behind(owner, mine, occupancy):
                    continue
                lines = await repo.release_lines(session, owner, room)
                mine.in_lane += len(lines)
                mine.queued_in_lane += len(lines)
                released += lines
            await session.commit()
        if released:
            now = utcnow()
            envelopes = [
                RequestEnvelope(
                    request_id=request_id,
                    kind=kind,
                    trace_id=request_id.hex,
                    created_at=now,
                    published_at=now,
                )
                for request_id, kind in released
            ]
            # A failed publish leaves the lines released but unpublished: the sweeper re-publishes them.
            await self._publisher.publish_many(envelopes, self._settings.kafka_topic_requests_batch)
        return len(released)

    async def settle_once(self) -> None:
        ended: list[StateChange] = []
        finished = []
        async with self._sessions() as session:
            for batch in await repo.open_batches(session):
                final = await batch_service.settle(session, batch, ended)
                if final:
                    logger.info("batch {} {}", batch.id, final)
                    finished.append(batch)
            await session.commit()
            for batch in finished:  # the completion event carries the final row, as committed
                await session.refresh(batch)
        await batch_service.announce(self._publisher, ended)
        for batch in finished:
            await self._publisher.publish_event(StatusEvent.of_batch(batch))
