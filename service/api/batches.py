"""Native batch routes (/api/v1/batches): thin — parse, resolve dependencies, call the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from service.api.deps import CallerDep, OwnerDep, RuntimeDep, SessionDep
from service.errors import NotFound, ValidationFailed
from service.schemas.batches import (
    BatchIdText,
    CursorText,
    NativeBatch,
    NativeBatchList,
    WindowText,
    parse_batch_id,
)
from service.usecases import batches as service
from service.usecases.batch_lines import NATIVE_REQUESTS, ParsedBatch, check_items, check_jsonl
from service.usecases.batch_output import native_lines
from service.usecases.files import PayloadTooLarge

router = APIRouter(prefix="/api/v1/batches", tags=["batches"])

_JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "text/plain")
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
                "example": [
                    {
                        "custom_id": "row-1",
                        "kind": "process_analysis",
                        "title": "Invoices",
                        "description": "…",
                    },
                    {"custom_id": "row-2", "kind": "chat", "messages": [{"role": "user", "content": "Hi"}]},
                ],
            },
            "application/jsonl": {"schema": {"type": "string", "description": "one request object per line"}},
        },
    }
}


async def _bounded(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The batch is larger than {limit} bytes.")
        yield chunk


def _batch_id(value: str) -> Any:
    parsed = parse_batch_id(value)
    if parsed is None:
        raise NotFound(f"No batch with id {value}.")
    return parsed


@router.post(
    "",
    status_code=201,
    response_model=NativeBatch,
    summary="Submit a batch: a JSON list of v1 request bodies each with custom_id, or JSONL",
    openapi_extra=_BODY_DOC,
)
async def create_batch(
    request: Request,
    rt: RuntimeDep,
    session: SessionDep,
    owner_id: OwnerDep,
    caller: CallerDep,
    completion_window: Annotated[
        WindowText, Query(description="e.g. 24h; unfinished lines then end as expired")
    ] = "24h",
) -> NativeBatch:
    settings = rt.settings
    checker = service.checker(settings, NATIVE_REQUESTS, caller.limits)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    parsed: ParsedBatch
    if content_type in _JSONL_TYPES:
        parsed = await check_jsonl(_bounded(request, settings.batch_max_bytes), checker, native=True)
    elif content_type == "application/json":
        raw = b"".join([chunk async for chunk in _bounded(request, settings.batch_max_bytes)])
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"The body is not valid JSON ({exc}).") from None
        if not isinstance(items, list):
            raise ValidationFailed("The body must be a JSON list of request objects (or JSONL).")
        parsed = check_items(items, checker)
    else:
        raise ValidationFailed(f"Send application/json (a list) or application/jsonl, not {content_type}.")
    service.refuse_if_invalid(parsed)
    batch_id = await service.store_batch(
        session,
        parsed,
        owner_id=owner_id,
        endpoint=NATIVE_REQUESTS,
        surface="native",
        completion_window=completion_window,
    )
    return NativeBatch.of(await service.view(session, await service.get_batch(session, batch_id, owner_id)))


@router.get("", response_model=NativeBatchList, summary="Your batches, newest first")
async def list_batches(
    session: SessionDep,
    owner_id: OwnerDep,
    limit: int = Query(20, ge=1, le=100),
    after: CursorText | None = Query(None, description="id of the last batch of the previous page"),
) -> NativeBatchList:
    views, more = await service.list_batches(session, owner_id, limit, _batch_id(after) if after else None)
    return NativeBatchList(data=[NativeBatch.of(view) for view in views], has_more=more)


@router.get("/{batch_id}", response_model=NativeBatch, summary="Status, counts and progress of a batch")
async def get_batch(batch_id: BatchIdText, session: SessionDep, owner_id: OwnerDep) -> NativeBatch:
    return NativeBatch.of(
        await service.view(session, await service.get_batch(session, _batch_id(batch_id), owner_id))
    )


@router.get(
    "/{batch_id}/results",
    summary="Every line's outcome as JSONL, in line order (available at any time: partial while running)",
    response_class=StreamingResponse,
)
async def get_results(
    batch_id: BatchIdText, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep
) -> StreamingResponse:
    batch = await service.get_batch(session, _batch_id(batch_id), owner_id)

    async def lines() -> AsyncIterator[bytes]:
        # The response outlives the route's session: the stream reads through a session of its own.
        async with rt.sessions() as streaming:
            async for line in native_lines(streaming, batch):
                yield line

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post(
    "/{batch_id}/cancel", response_model=NativeBatch, summary="Cancel: lines not started are cancelled"
)
async def cancel_batch(
    batch_id: BatchIdText, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep
) -> NativeBatch:
    return NativeBatch.of(await service.cancel(session, rt.publisher, _batch_id(batch_id), owner_id))
