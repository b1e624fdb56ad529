"""Versioned request routes: thin — validate, resolve dependencies, call one service function."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from pydantic import BaseModel
from starlette.background import BackgroundTask

from service.api.deps import AdmissionDep, OwnerDep, RuntimeDep, SessionDep, StoreDep, get_caller
from service.api.errors import CONFLICT_RESPONSE
from service.callers.connections import released_after
from service.db.models import RequestStatus
from service.db.records import RequestRecord, StatusRecord
from service.errors import TooManyRequests, ValidationFailed
from service.kinds import EXAMPLES, RequestInput
from service.runtime import Runtime
from service.schemas.fields import Text
from service.schemas.requests import (
    IdempotencyKey,
    Links,
    QueueInfo,
    RequestResultOut,
    RequestStatusOut,
    SubmitResponse,
    UsageInfo,
)
from service.usecases import live
from service.usecases import requests as service

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])

IdempotencyKeyHeader = Annotated[
    IdempotencyKey | None,
    Header(
        alias="Idempotency-Key",
        description="Same as the body's idempotency_key: a repeat returns the first request; "
        "the same key with a different body is 409 idempotency_conflict.",
    ),
]


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise an already-valid model once, in Rust: the hottest routes skip FastAPI's second
    validation of their return value (response_model still documents the shape)."""
    return Response(model.__pydantic_serializer__.to_json(model), status_code, media_type="application/json")


def links(request_id: uuid.UUID) -> Links:
    base = f"/api/v1/requests/{request_id}"
    return Links(status=base, result=f"{base}/result")


def status_out(row: RequestRecord | StatusRecord, queue: QueueInfo | None = None) -> RequestStatusOut:
    # One model_validate of a plain dict (nested parts included) runs wholly in pydantic-core:
    # measured ~3x cheaper than building the nested models in Python, and this runs on every poll.
    base = f"/api/v1/requests/{row.id}"
    return RequestStatusOut.model_validate(
        {
            "id": row.id,
            "kind": row.kind,
            "status": row.status,
            "category": row.category,
            "attempts": row.attempts,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "error": {"code": row.error_code, "message": row.error_message or ""} if row.error_code else None,
            "links": {"status": base, "result": f"{base}/result"},
            "queue": queue,
        }
    )


async def live_status_out(rt: Runtime, row: RequestRecord | StatusRecord) -> RequestStatusOut:
    """The status with, while queued, the position in its lane and an ETA."""
    queue = None
    if row.status == RequestStatus.QUEUED:
        queue = await live.queue_info(rt.sessions, rt.hub, row)
    return status_out(row, queue)


def usage_out(row: RequestRecord) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.total_tokens,
        estimated=row.tokens_estimated,
        llm_calls=row.llm_calls,
        llm_latency_ms=row.llm_latency_ms,
        backend=row.llm_backend,
        model=row.llm_model,
        cached=row.cached_from is not None,
        cached_from=row.cached_from,
        cached_prompt_tokens=row.cached_prompt_tokens,
        tokens_saved=row.tokens_saved,
    )


def prefer_wait(prefer: str | None, limit: float) -> float:
    """Seconds asked for by an RFC 7240 `Prefer: wait=N` header (0 without one), capped at `limit`."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(0.0, min(float(value.strip().strip('"')), limit))
            except ValueError:
                return 0.0  # an unintelligible preference is ignored, as RFC 7240 asks
    return 0.0


def processing_seconds(row: RequestRecord) -> float | None:
    if row.started_at and row.finished_at:
        return round((row.finished_at - row.started_at).total_seconds(), 3)
    return None


@router.post(
    "",
    status_code=202,
    response_model=SubmitResponse,
    summary="Submit an analysis request",
    responses={
        200: {
            "model": SubmitResponse | RequestStatusOut,
            "description": "An earlier submit with this idempotency key, or (with `Prefer: wait`) "
            "the request's final status",
        },
        **CONFLICT_RESPONSE,  # the idempotency key was used with a different body
    },
)
async def submit_request(
    admitted: AdmissionDep,
    payload: Annotated[RequestInput, Body(openapi_examples=EXAMPLES)],
    prefer: Annotated[
        Annotated[str, Text(max_length=1_000)] | None,
        Header(description="`wait=N`: answer with the finished request if it ends within N seconds."),
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    rt, owner_id = admitted.rt, admitted.owner_id
    submitted = await service.submit(rt, payload, owner_id, idempotency_key, admitted.caller.limits)
    wait = prefer_wait(prefer, rt.settings.long_poll_max_seconds)
    row = None
    if wait > 0:
        try:
            slot = rt.connections.acquire("long_poll", owner_id)
        except TooManyRequests:
            slot = None  # a preference may be ignored: at the owner's cap, answer at once instead
        if slot is not None:
            try:
                row = await service.wait_for_final(rt.store, rt.hub, submitted.id, owner_id, wait)
            finally:
                slot.release()
    if row is not None and row.status in RequestStatus.FINAL:
        response = model_response(status_out(row), 200)
        response.headers["Preference-Applied"] = f"wait={wait:g}"
    else:
        body = SubmitResponse(
            id=submitted.id,
            kind=submitted.kind,
            status=submitted.status,
            created_at=submitted.created_at,
            links=links(submitted.id),
        )
        response = model_response(body, 202 if submitted.created else 200)
    response.headers["Location"] = links(submitted.id).status
    response.headers.update(admitted.rate_limit_headers)
    return response


_WAIT_PARAMETER = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Long-poll: wait up to this many seconds for a final status.",
    "schema": {"type": "number", "minimum": 0, "default": 0},
}


def long_poll_seconds(request: Request) -> float:
    """`?wait=`, read by hand: a declared query parameter costs FastAPI a parameter pass on every
    poll, and almost no poll sends it (documented through openapi_extra)."""
    raw = request.query_params.get("wait") if request.scope["query_string"] else None
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not math.isfinite(wait) or wait < 0:
        message = "a finite number of seconds, 0 or more"
        raise ValidationFailed(f"query.wait: {message}", details=[{"loc": "query.wait", "msg": message}])
    return wait


@router.get(
    "/{request_id}",
    response_model=RequestStatusOut,
    summary="Status of a request",
    openapi_extra={"parameters": [_WAIT_PARAMETER]},
)
async def get_status(request_id: uuid.UUID, request: Request) -> Response:
    # The hottest route: the caller and ?wait= are read inline rather than as a dependency and a
    # declared parameter, which saves FastAPI two passes per poll (measured with bench/load.py
    # against bench/bare_status.py).
    rt: Runtime = request.app.state.runtime
    owner_id = (await get_caller(request)).owner_id
    wait = long_poll_seconds(request)
    if wait > 0:
        wait = min(wait, rt.settings.long_poll_max_seconds)
        with rt.connections.hold("long_poll", owner_id):
            row = await service.wait_for_final(rt.store, rt.hub, request_id, owner_id, wait)
    else:
        row = await service.get_status(rt.store, request_id, owner_id)
    return model_response(await live_status_out(rt, row))


@router.get(
    "/{request_id}/events",
    summary="Server-sent events of a request's status changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`event: status` per change"}},
)
async def status_events(
    request_id: uuid.UUID,
    rt: RuntimeDep,
    owner_id: OwnerDep,
    last_event_id: Annotated[
        Annotated[str, Text(max_length=200)] | None, Header(description="Resume after this event id.")
    ] = None,
) -> StreamingResponse:
    """queued → processing → completed/failed/cancelled/expired, one `status` event each (data: the
    status object, id: 1, 2, 3), then the stream ends. A reconnect with `Last-Event-ID` skips what
    was seen."""
    slot = rt.connections.acquire("sse", owner_id)
    watch = rt.hub.open_watch(request_id)  # before the read: nothing can slip in between
    try:
        first = await service.get_status(rt.store, request_id, owner_id)
    except BaseException:
        watch.close()
        slot.release()
        raise
    changes = live.status_changes(
        rt.store,
        watch,
        first,
        owner_id,
        seen_rank=live.parse_last_event_id(last_event_id),
        keepalive_seconds=rt.settings.sse_keepalive_seconds,
        max_seconds=rt.settings.sse_max_seconds,
    )
    return StreamingResponse(
        released_after(slot, _sse_frames(rt, changes)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),
    )


async def _sse_frames(rt: Runtime, changes: AsyncIterator[StatusRecord | None]) -> AsyncIterator[bytes]:
    async with aclosing(changes):  # type: ignore[type-var]
        async for row in changes:
            if row is None:
                yield b": keep-alive\n\n"
                continue
            body = await live_status_out(rt, row)
            yield format_sse_event(
                data_str=body.model_dump_json(),
                event="status",
                id=str(live.status_rank(row.status)),
            )


@router.get(
    "/{request_id}/result",
    response_model=RequestResultOut,
    summary="Result of a completed request",
    responses=CONFLICT_RESPONSE,
)
async def get_result(request_id: uuid.UUID, store: StoreDep, owner_id: OwnerDep) -> RequestResultOut:
    row = service.require_completed(await service.get_request(store, request_id, owner_id))
    return RequestResultOut(
        id=row.id,
        kind=row.kind,
        status=row.status,
        category=row.category,
        result=row.result,
        template_version=row.template_version,
        usage=usage_out(row),
        processing_time=processing_seconds(row),
        cached=row.cached_from is not None,
        cached_from=row.cached_from,
    )


@router.post(
    "/{request_id}/cancel",
    response_model=RequestStatusOut,
    summary="Cancel a queued or running request",
    responses=CONFLICT_RESPONSE,
)
async def cancel_request(
    request_id: uuid.UUID, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep
) -> RequestStatusOut:
    return status_out(await service.cancel(session, rt.publisher, request_id, owner_id))
