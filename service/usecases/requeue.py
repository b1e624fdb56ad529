"""Re-queue a failed request (the operator console's action for dead-lettered or failed work)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db import console_repo
from service.db import requests_repo as repo
from service.db.models import RequestStatus, utcnow
from service.db.unit_of_work import after_commit
from service.errors import Conflict, NotFound
from service.messaging.kafka import RequestPublisher
from service.schemas.envelope import RequestEnvelope


async def requeue(
    session: AsyncSession,
    publisher: RequestPublisher,
    settings: Settings,
    request_id: uuid.UUID,
    owner_id: str | None,
) -> None:
    """failed → queued in the caller's unit of work, published again on its lane once committed
    (the worker's claim makes a duplicate harmless; a message lost here is re-published by the
    sweeper like any queued row). Another owner's request is a 404, like an unknown one."""
    publisher.require_available()
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
    if changed is None:
        raise Conflict("The request changed meanwhile; reload it.", code="not_requeueable")
    # Its day's usage may change again: the console sums that day anew.
    await console_repo.forget_day(session, row.created_at)
    now = utcnow()
    envelope = RequestEnvelope(
        request_id=request_id,
        kind=changed.kind,
        attempt=row.attempts + 1,
        trace_id=request_id.hex,
        created_at=now,
        published_at=now,
    )
    topic = settings.kafka_topic_requests_batch if row.batch_id is not None else None

    async def publish() -> None:
        await publisher.publish(envelope, topic)

    after_commit(session, publish)
