"""`GET /api/v1/batches/{id}/events`: server-sent events of a batch's progress (service/usecases/live.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from starlette.background import BackgroundTask

from service.api.deps import OwnerDep, RuntimeDep
from service.callers.connections import released_after
from service.db.batch_models import BatchView
from service.errors import NotFound
from service.schemas.batches import BatchIdText, NativeBatch, parse_batch_id
from service.schemas.fields import Text
from service.usecases import batches, live

router = APIRouter(prefix="/api/v1/batches", tags=["batches"])


@router.get(
    "/{batch_id}/events",
    summary="Server-sent events of a batch's progress",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`event: batch` per change"}},
)
async def batch_events(
    batch_id: BatchIdText,
    rt: RuntimeDep,
    owner_id: OwnerDep,
    last_event_id: Annotated[
        Annotated[str, Text(max_length=200)] | None, Header(description="Resume after this event id.")
    ] = None,
) -> StreamingResponse:
    """One `batch` event (data: the batch as `GET /api/v1/batches/{id}` shows it) whenever lines
    finish or the batch changes stage, ending after its final status; `Last-Event-ID` resumes."""
    parsed = parse_batch_id(batch_id)
    if parsed is None:
        raise NotFound(f"No batch with id {batch_id}.")
    slot = rt.connections.acquire("sse", owner_id)
    watch = rt.hub.open_watch(parsed)  # before the read: nothing can slip in between
    try:
        async with rt.sessions() as session:
            await batches.get_batch(session, parsed, owner_id)  # 404 before the stream starts
    except BaseException:
        watch.close()
        slot.release()
        raise
    try:
        seen = int((last_event_id or "-1").strip())
    except ValueError:
        seen = -1
    changes = live.batch_changes(
        rt.sessions,
        watch,
        parsed,
        owner_id,
        seen_mark=seen,
        keepalive_seconds=rt.settings.sse_keepalive_seconds,
        max_seconds=rt.settings.sse_max_seconds,
    )
    return StreamingResponse(
        released_after(slot, _frames(changes)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),
    )


async def _frames(changes: AsyncIterator[BatchView | None]) -> AsyncIterator[bytes]:
    async with aclosing(changes):  # type: ignore[type-var]
        async for view in changes:
            if view is None:
                yield b": keep-alive\n\n"
                continue
            body = NativeBatch.of(view).model_dump_json()
            yield format_sse_event(data_str=body, event="batch", id=str(live.batch_mark(view)))
