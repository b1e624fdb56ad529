"""Re-queue a failed request (the operator console's action for dead-lettered or failed work)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db import console_repo
from service.db import requests_repo as repo
from service.db.models import RequestStatus, utcnow
from service.errors import Conflict, NotFound
from service.messaging.kafka import RequestPublisher
from service.schemas.envelope import RequestEnvelope


async def requeue(
    sessions: async_sessionmaker[AsyncSession],
    publisher: RequestPublisher,
    settings: Settings,
    request_id: uuid.UUID,
    owner_id: str | None,
) -> None:
    """failed → queued, committed, then published again on its lane (the worker's claim makes a
    duplicate harmless). Another owner's request is a 404, like an unknown one."""
    publisher.require_available()
    async with sessions() as session:
        row = await repo.get_request(session, request_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"No request with id {request_id}.")
        if row.status != RequestStatus.FAILED:
            raise Conflict(
                f"Only failed requests can be re-queued; this one is {row.status}.",
                code="not_requeueable",
                details={"status": row.status},
            )
        changed = await repo.requeue_failed(session, request_id)
        # Its day's usage may change again: the console sums that day anew.
        await console_repo.forget_day(session, row.created_at)
        attempts, in_batch = row.attempts, row.batch_id is not None
        await session.commit()
    if changed is None:
        raise Conflict("The request changed meanwhile; reload it.", code="not_requeueable")
    now = utcnow()
    envelope = RequestEnvelope(
        request_id=request_id,
        kind=changed.kind,
        attempt=attempts + 1,
        trace_id=request_id.hex,
        created_at=now,
        published_at=now,
    )
    await publisher.publish(envelope, settings.kafka_topic_requests_batch if in_batch else None)
