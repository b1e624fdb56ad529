"""Request use-cases behind the routes: submit, read status and result, cancel, long-poll."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from service import monitoring, tracing
from service.callers.model import Limits
from service.config import Settings
from service.db import request_stats_repo as stats_repo
from service.db import requests_repo as repo
from service.db.models import RequestStatus, utcnow
from service.db.records import RequestRecord, StatusRecord
from service.db.request_store import DuplicateRequest, RequestStore
from service.db.unit_of_work import after_commit
from service.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from service.kinds import KindInput, kind_of
from service.messaging.hub import StatusHub
from service.messaging.kafka import RequestPublisher
from service.runtime import Runtime
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.usecases import conversations
from service.usecases.model_policy import check_model
from service.usecases.webhooks import request_webhook_row


@dataclass(frozen=True, slots=True)
class Submitted:
    id: uuid.UUID
    kind: str
    status: str
    created_at: datetime
    created: bool  # False: an earlier submit with the same idempotency key is returned


def check_limits(payload: KindInput, settings: Settings) -> None:
    """The configurable size limits of the body's kind; structure and storable text
    (service/schemas/fields.py) were checked by the schema."""
    problems = kind_of(payload.kind).limit_problems(payload, settings)
    if problems:
        raise ValidationFailed(
            "The request exceeds a size limit or holds invalid text.", details=problems[:20]
        )


def row_values(payload: KindInput) -> dict[str, Any]:
    """The request row's input columns: the kind maps its body (and settles its category)."""
    kind = kind_of(payload.kind)
    row = {"kind": kind.name, **kind.to_row(payload, kind.category(payload))}
    if not payload.cache:
        # The worker reads the bypass from the options (service/usecases/answer_cache.py).
        row["options"] = {**(row.get("options") or {}), "cache": False}
    return row


async def submit(
    rt: Runtime,
    payload: KindInput,
    owner_id: str | None = None,
    header_idempotency_key: str | None = None,
    limits: Limits | None = None,
) -> Submitted:
    """The API span of a request's trace: the root the worker's spans hang under (via the message)."""
    with tracing.span("api.submit", kind=tracing.SpanKind.SERVER) as current:
        submitted = await _submit(rt, payload, owner_id, header_idempotency_key, limits)
        if current.is_recording():
            current.set_attribute("gigaoffice.request.id", str(submitted.id))
            current.set_attribute("gigaoffice.request.kind", submitted.kind)
        return submitted


async def _submit(
    rt: Runtime,
    payload: KindInput,
    owner_id: str | None,
    header_idempotency_key: str | None,
    limits: Limits | None,
) -> Submitted:
    """Store, then publish and wait for the broker's ack.

    The submit path is its own unit of work and holds no session: the row (with its webhook
    endpoint, if any) is written in one atomic step of the request store, durable before the
    publish, so a worker never receives a pointer to nothing. If the broker refuses, the row is
    failed at once (503 to the caller), never left queued.
    """
    settings, store, publisher = rt.settings, rt.store, rt.publisher
    check_limits(payload, settings)
    check_model(payload, settings, limits)  # 400 for a model the settings or the key do not allow
    publisher.require_available()  # a known-down broker: 503 now, and no row to fail afterwards
    columns = row_values(payload)  # an unknown category is refused here, before anything is stored
    conversation_id = getattr(payload, "conversation_id", None)
    if conversation_id is not None:
        await conversations.require_owned(rt.sessions, conversation_id, owner_id)
        columns["options"] = conversations.with_conversation(columns.get("options"), conversation_id)
    request_id = uuid.uuid4()
    now = utcnow()
    key = idempotency_key(payload.idempotency_key, header_idempotency_key)
    scoped_key = repo.scoped_idempotency_key(owner_id, key) if key else None
    body_hash = body_fingerprint(payload) if key else None
    values = {
        "id": request_id,
        "owner_id": owner_id,
        "trace_id": request_id.hex,
        "idempotency_key": scoped_key,
        "idempotency_hash": body_hash,
        **columns,
    }
    try:
        if payload.webhook is None:
            await store.insert(values)
        else:
            endpoint = await request_webhook_row(settings, payload.webhook, request_id, owner_id)
            await store.insert_with_webhook(values, endpoint)
    except DuplicateRequest:
        if scoped_key is None:
            raise
        async with rt.sessions() as session:
            existing = await repo.find_by_idempotency_key(session, scoped_key)
        if existing is None:
            raise
        if existing.idempotency_hash is not None and existing.idempotency_hash != body_hash:
            raise Conflict(
                "This idempotency key was already used with a different request body.",
                code="idempotency_conflict",
                details={"request_id": str(existing.id)},
            ) from None
        return Submitted(existing.id, existing.kind, existing.status, existing.created_at, created=False)
    try:
        with tracing.span(
            f"publish {settings.kafka_topic_requests}",
            kind=tracing.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": settings.kafka_topic_requests,
            },
        ):
            envelope = RequestEnvelope(
                request_id=request_id,
                kind=values["kind"],
                trace_id=request_id.hex,
                traceparent=tracing.inject(),  # the Kafka hop: the worker's spans continue this trace
                created_at=now,
                published_at=utcnow(),
            )
            await publisher.publish(envelope)
    except ServiceUnavailable as exc:
        logger.error("publish of request {} failed; marking it failed", request_id)
        await store.fail_unpublished(request_id, exc.message)
        raise
    lane = stats_repo.lane_of(values.get("batch_id"))
    monitoring.request_submitted(values["kind"], lane, values.get("category"))
    return Submitted(request_id, values["kind"], RequestStatus.QUEUED, now, created=True)


def idempotency_key(body_key: str | None, header_key: str | None) -> str | None:
    """The key from the body or the `Idempotency-Key` header; both given, they must agree."""
    body_key = body_key.strip() if body_key else None
    header_key = header_key.strip() if header_key else None
    if body_key and header_key and body_key != header_key:
        raise ValidationFailed(
            "The Idempotency-Key header and the body's idempotency_key differ.",
            details=[{"loc": "idempotency_key", "msg": "differs from the Idempotency-Key header"}],
        )
    return body_key or header_key or None


def body_fingerprint(payload: KindInput) -> str:
    """SHA-256 of the request as validated (ranges normalised, row objects unfolded), without its key."""
    data = payload.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


_Row = TypeVar("_Row", RequestRecord, StatusRecord)


def _visible(row: _Row | None, request_id: uuid.UUID, owner_id: str | None) -> _Row:
    # Someone else's request is reported exactly like a missing one: ids are not an oracle.
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        raise NotFound(f"No request with id {request_id}.")
    return row


async def get_request(
    store: RequestStore, request_id: uuid.UUID, owner_id: str | None = None
) -> RequestRecord:
    return _visible(await store.get(request_id), request_id, owner_id)


async def get_status(store: RequestStore, request_id: uuid.UUID, owner_id: str | None = None) -> StatusRecord:
    return _visible(await store.get_status(request_id), request_id, owner_id)


async def wait_for_final(
    store: RequestStore, hub: StatusHub, request_id: uuid.UUID, owner_id: str | None, wait: float
) -> StatusRecord:
    """Long-poll without polling: read the row, and if it is not final, sleep until its completion
    event reaches this process (or `wait` seconds pass), then read it once more. The watch begins
    before the first read, so an event published in between is not missed; the last read covers a
    lost event."""
    with hub.watch(request_id) as watch:
        row = await get_status(store, request_id, owner_id)
        if row.status in RequestStatus.FINAL or wait <= 0:
            return row
        await watch.final(wait)
    return await get_status(store, request_id, owner_id)


def require_completed(row: RequestRecord) -> RequestRecord:
    if row.status == RequestStatus.COMPLETED:
        return row
    details: dict[str, Any] = {"status": row.status}
    if row.error_code:
        details["error"] = {"code": row.error_code, "message": row.error_message}
    if row.status in RequestStatus.ACTIVE:
        raise Conflict(
            f"The request is {row.status}; its result is not ready yet.",
            code="result_not_ready",
            details=details,
        )
    raise Conflict(f"The request ended as {row.status}; it has no result.", code="no_result", details=details)


async def cancel(
    session: AsyncSession, publisher: RequestPublisher, request_id: uuid.UUID, owner_id: str | None = None
) -> RequestRecord:
    """queued/processing → cancelled in the caller's unit of work; announced on the responses topic
    once it is committed."""
    row = await repo.get_request(session, request_id)
    record = _visible(RequestRecord.from_object(row) if row else None, request_id, owner_id)
    if record.status not in RequestStatus.ACTIVE:
        raise Conflict(
            f"The request is already {record.status}.",
            code="not_cancellable",
            details={"status": record.status},
        )
    changed = await repo.cancel(session, request_id)
    if changed is None:  # it finished between the read and the update
        await session.refresh(row)
        record = RequestRecord.from_object(row)
        raise Conflict(
            f"The request is already {record.status}.",
            code="not_cancellable",
            details={"status": record.status},
        )
    await session.refresh(row)

    async def announce() -> None:
        await publisher.publish_event(StatusEvent.of(changed))
        monitoring.request_finished(changed)

    after_commit(session, announce)
    return RequestRecord.from_object(row)
