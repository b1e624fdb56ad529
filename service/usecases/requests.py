"""Request use-cases behind the routes: submit, read status and result, cancel, long-poll."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from service import monitoring
from service.config import Settings
from service.db import request_stats_repo as stats_repo
from service.db import requests_repo as repo
from service.db.models import RequestKind, RequestStatus, utcnow
from service.db.records import RequestRecord, StatusRecord
from service.db.request_store import DuplicateRequest, RequestStore
from service.db.unit_of_work import after_commit
from service.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from service.messaging.hub import StatusHub
from service.messaging.kafka import RequestPublisher
from service.pipeline.categories import ACTIVE_CATEGORIES, PROCESS_CATEGORY, SPREADSHEET_CATEGORIES
from service.pipeline.categories import resolve_category as resolve_category_name
from service.runtime import Runtime
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.schemas.requests import AnyRequestInput, ChatInput, ProcessAnalysisInput, SpreadsheetInput
from service.usecases.webhooks import request_webhook_row


@dataclass(frozen=True, slots=True)
class Submitted:
    id: uuid.UUID
    kind: str
    status: str
    created_at: datetime
    created: bool  # False: an earlier submit with the same idempotency key is returned


def check_limits(payload: AnyRequestInput, settings: Settings) -> None:
    """The configurable size limits; structure and storable text (service/schemas/fields.py) were
    checked by the schema. One pass over every text value of the request."""
    problems: list[dict[str, Any]] = []

    def problem(loc: str, msg: str) -> None:
        problems.append({"loc": loc, "msg": msg})

    field_limits = {"query_text": settings.max_query_chars, "description": settings.max_description_chars}
    cell_chars = 0
    for loc, text in _strings(payload):
        if loc.startswith("input_data."):
            cell_chars += len(text)
            if len(text) > settings.max_cell_chars:
                problem(loc, f"a cell holds at most {settings.max_cell_chars} characters")
        elif loc in field_limits and len(text) > field_limits[loc]:
            problem(loc, f"at most {field_limits[loc]} characters, got {len(text)}")
    if isinstance(payload, SpreadsheetInput):
        cells = sum(len(row) for row in payload.input_data or [])
        if cells > settings.max_input_cells:
            problem("input_data", f"at most {settings.max_input_cells} cells, got {cells}")
        if cell_chars > settings.max_input_chars:
            problem("input_data", f"at most {settings.max_input_chars} characters in all, got {cell_chars}")
    if isinstance(payload, ChatInput):
        chat_chars = sum(len(message.content) for message in payload.messages)
        if chat_chars > settings.max_input_chars:
            problem("messages", f"at most {settings.max_input_chars} characters in all, got {chat_chars}")
        if payload.max_tokens is not None and payload.max_tokens > settings.llm_max_tokens:
            problem("max_tokens", f"at most {settings.llm_max_tokens} on this service")
    if problems:
        raise ValidationFailed(
            "The request exceeds a size limit or holds invalid text.", details=problems[:20]
        )


def _strings(payload: AnyRequestInput) -> Iterator[tuple[str, str]]:
    """Every text value of a request with its location, for checks that apply to all of them."""
    for name, value in payload:
        if isinstance(value, str):
            yield name, value
    if isinstance(payload, SpreadsheetInput):
        for r, row in enumerate(payload.input_data or []):
            for c, cell in enumerate(row):
                if isinstance(cell, str):
                    yield f"input_data.{r}.{c}", cell
    if isinstance(payload, ChatInput):
        for index, message in enumerate(payload.messages):
            yield f"messages.{index}.content", message.content


def resolve_category(payload: AnyRequestInput) -> str | None:
    if isinstance(payload, ProcessAnalysisInput):
        return PROCESS_CATEGORY
    if isinstance(payload, ChatInput):
        return None  # no template, no classification
    if payload.category is None or not payload.category.strip():
        return None  # the worker classifies it
    name = resolve_category_name(payload.category)
    if name not in SPREADSHEET_CATEGORIES:
        valid = [c for c in ACTIVE_CATEGORIES if c in SPREADSHEET_CATEGORIES]
        raise ValidationFailed(
            f"Unknown spreadsheet category '{payload.category}'.",
            details=[
                {
                    "loc": "category",
                    "msg": f"use one of {valid} or the aliases analysis, "
                    "transformation, search, generation; omit it to classify automatically",
                }
            ],
        )
    return name


def row_values(payload: AnyRequestInput, category: str | None) -> dict[str, Any]:
    if isinstance(payload, SpreadsheetInput):
        return {
            "kind": RequestKind.SPREADSHEET,
            "category": category,
            "query_text": payload.query_text,
            "input_range": payload.input_range,
            "input_data": payload.input_data,
            "options": {"output_range": payload.output_range} if payload.output_range else None,
        }
    if isinstance(payload, ChatInput):
        # The conversation is the input (input_data); model and sampling options travel in options.
        chat_options = {
            k: v
            for k, v in (
                ("model", payload.model),
                ("temperature", payload.temperature),
                ("max_tokens", payload.max_tokens),
            )
            if v is not None
        }
        return {
            "kind": RequestKind.CHAT,
            "category": None,
            "input_data": [message.model_dump() for message in payload.messages],
            "options": chat_options or None,
        }
    options = {
        k: v
        for k, v in (
            ("company_size", payload.company_size),
            ("industry", payload.industry),
            ("language", payload.language),
        )
        if v
    }
    return {
        "kind": RequestKind.PROCESS_ANALYSIS,
        "category": category,
        "title": payload.title,
        "description": payload.description,
        "options": options or None,
    }


async def submit(
    rt: Runtime,
    payload: AnyRequestInput,
    owner_id: str | None = None,
    header_idempotency_key: str | None = None,
) -> Submitted:
    """Store, then publish and wait for the broker's ack.

    The submit path is its own unit of work and holds no session: the row (with its webhook
    endpoint, if any) is written in one atomic step of the request store, durable before the
    publish, so a worker never receives a pointer to nothing. If the broker refuses, the row is
    failed at once (503 to the caller), never left queued.
    """
    settings, store, publisher = rt.settings, rt.store, rt.publisher
    check_limits(payload, settings)
    publisher.require_available()  # a known-down broker: 503 now, and no row to fail afterwards
    category = resolve_category(payload)
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
        **row_values(payload, category),
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
    envelope = RequestEnvelope(
        request_id=request_id,
        kind=values["kind"],
        trace_id=request_id.hex,
        created_at=now,
        published_at=utcnow(),
    )
    try:
        await publisher.publish(envelope)
    except ServiceUnavailable as exc:
        logger.error("publish of request {} failed; marking it failed", request_id)
        await store.fail_unpublished(request_id, exc.message)
        raise
    monitoring.request_submitted(values["kind"], stats_repo.lane_of(values.get("batch_id")), category)
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


def body_fingerprint(payload: AnyRequestInput) -> str:
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
