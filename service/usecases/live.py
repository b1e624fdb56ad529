"""Live status: queue position with an ETA, and the stream of a request's status changes (SSE).

Both wake from the status hub (service/messaging/hub.py), never from a loop over the database: a
stream reads the row once when it starts, once per status event, and once at its deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import request_stats_repo as stats_repo
from service.db.batch_models import BatchStatus, BatchView
from service.db.models import RequestStatus
from service.db.records import RequestRecord, StatusRecord
from service.db.request_store import RequestStore
from service.messaging.hub import StatusHub, Watch
from service.schemas.requests import QueueInfo
from service.usecases import batches
from service.usecases.requests import get_status

# Counting stops here: "at least 10000 ahead" is as useful as the exact figure and costs bounded.
QUEUE_COUNT_CAP = 10_000

# SSE event ids: the position of a status in the lifecycle, so Last-Event-ID says what was seen.
_RANK = {RequestStatus.QUEUED: 1, RequestStatus.PROCESSING: 2}
FINAL_RANK = 3


def status_rank(status: str) -> int:
    return _RANK.get(status, FINAL_RANK)


async def queue_info(
    sessions: async_sessionmaker[AsyncSession], hub: StatusHub, row: StatusRecord | RequestRecord
) -> QueueInfo | None:
    if row.status != RequestStatus.QUEUED:
        return None
    async with sessions() as session:
        position = await stats_repo.queue_position(session, row.id, QUEUE_COUNT_CAP)
    if position is None:  # claimed meanwhile
        return None
    lane, ahead = position
    # The rate every worker achieved lately in this lane while busy, as seen on the responses
    # topic; None (no ETA) until a few requests have completed.
    rate = hub.completions_per_second(lane)
    return QueueInfo(
        lane=lane,
        ahead=ahead,
        ahead_capped=ahead >= QUEUE_COUNT_CAP,
        eta_seconds=round((ahead + 1) / rate, 1) if rate else None,
    )


async def status_changes(
    store: RequestStore,
    watch: Watch,
    first: StatusRecord,
    owner_id: str | None,
    *,
    seen_rank: int,
    keepalive_seconds: float,
    max_seconds: float,
) -> AsyncIterator[StatusRecord | None]:
    """Each new status of the request (later in its lifecycle than `seen_rank`), ending after a final
    one or at `max_seconds` (the client reconnects with Last-Event-ID); None asks for a keep-alive.
    `watch` was opened before `first` was read, and is closed here."""
    deadline = time.monotonic() + max_seconds
    row, at_deadline = first, False
    try:
        while True:
            if status_rank(row.status) > seen_rank:
                seen_rank = status_rank(row.status)
                yield row
            if seen_rank == FINAL_RANK or at_deadline:
                return
            event = await watch.next(min(keepalive_seconds, deadline - time.monotonic()))
            if event is not None:
                if status_rank(event.status) > seen_rank:
                    row = await get_status(store, first.id, owner_id)
            elif time.monotonic() >= deadline:
                # One read covers an event that was lost; then the stream ends (clients reconnect).
                row, at_deadline = await get_status(store, first.id, owner_id), True
            else:
                yield None
    finally:
        watch.close()


def parse_last_event_id(value: str | None) -> int:
    try:
        return max(0, min(int((value or "0").strip()), FINAL_RANK))
    except ValueError:
        return 0


# --- batches ---------------------------------------------------------------------------------------

# A batch's SSE event id: lines finished and the batch's own stage, both only ever growing.
_BATCH_STAGE = {BatchStatus.VALIDATING: 0, BatchStatus.IN_PROGRESS: 1, BatchStatus.CANCELLING: 2}
# Lines finishing together cost one read: events arriving this soon after one are taken with it.
_BATCH_COALESCE_SECONDS = 0.2


def batch_mark(view: BatchView) -> int:
    done = sum(view.counts.get(status, 0) for status in RequestStatus.FINAL)
    return done * 4 + _BATCH_STAGE.get(view.batch.status, 3)


async def batch_changes(
    sessions: async_sessionmaker[AsyncSession],
    watch: Watch,
    batch_id: uuid.UUID,
    owner_id: str | None,
    *,
    seen_mark: int,
    keepalive_seconds: float,
    max_seconds: float,
) -> AsyncIterator[BatchView | None]:
    """The batch's state each time it moved (lines finished, stage changed) until it is final or
    `max_seconds` pass; None asks for a keep-alive. Woken by the status events of its lines and its
    own completion event; `watch` was opened before the caller's first read, and is closed here."""
    deadline = time.monotonic() + max_seconds
    try:
        while True:
            async with sessions() as session:
                view = await batches.view(session, await batches.get_batch(session, batch_id, owner_id))
            if batch_mark(view) > seen_mark:
                seen_mark = batch_mark(view)
                yield view
            if view.batch.status in BatchStatus.FINAL or time.monotonic() >= deadline:
                return
            while True:
                event = await watch.next(min(keepalive_seconds, max(0.0, deadline - time.monotonic())))
                if event is not None or time.monotonic() >= deadline:
                    break
                yield None
            if event is not None:
                await asyncio.sleep(_BATCH_COALESCE_SECONDS)
                watch.drain()
    finally:
        watch.close()
