"""Batch use-cases shared by the native (/api/v1/batches) and OpenAI-compatible (/v1) surfaces.

A batch is validated whole before anything is stored: a bad input fails (OpenAI surface: a
`failed` batch with per-line errors; native surface: 422) and creates no request row. A valid
batch stores every line as a request row held back from the broker; the feeder
(workers/feeder.py) releases them to the batch lane owner by owner, and finalises the batch when
no line is left running. Counts are read from the rows themselves, so they cannot drift.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service import monitoring
from service.callers.model import Limits
from service.config import Settings
from service.db import batches_repo as repo
from service.db import requests_repo
from service.db.batch_models import Batch, BatchStatus, BatchView, StoredFile
from service.db.models import RequestStatus, utcnow
from service.db.requests_repo import StateChange
from service.db.unit_of_work import after_commit
from service.errors import Conflict, NotFound, ValidationFailed
from service.messaging.kafka import RequestPublisher
from service.usecases.batch_lines import ENDPOINTS, NATIVE_REQUESTS, LineChecker, ParsedBatch

_WINDOW = re.compile(r"^([1-9][0-9]{0,2})h$")
MAX_WINDOW_HOURS = 168


def window_hours(completion_window: str) -> int:
    match = _WINDOW.match(completion_window)
    if not match or int(match.group(1)) > MAX_WINDOW_HOURS:
        raise ValidationFailed(
            f"completion_window must look like '24h' (1h to {MAX_WINDOW_HOURS}h), got {completion_window!r}.",
            details=[{"loc": "completion_window", "msg": "for example 24h"}],
        )
    return int(match.group(1))


def checker(settings: Settings, endpoint: str, limits: Limits | None = None) -> LineChecker:
    if endpoint not in ENDPOINTS:
        raise ValidationFailed(
            f"endpoint must be one of {list(ENDPOINTS)}, got {endpoint!r}.",
            details=[{"loc": "endpoint", "msg": "unsupported endpoint"}],
        )
    return LineChecker(settings, endpoint, limits)


async def store_batch(
    session: AsyncSession,
    parsed: ParsedBatch,
    *,
    owner_id: str | None,
    endpoint: str,
    surface: str,
    completion_window: str,
    input_file_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> uuid.UUID:
    """One transaction: the batch and all its lines, or (with errors) a failed batch and no lines."""
    hours = window_hours(completion_window)
    batch_id = uuid.uuid4()
    now = utcnow()
    failed = bool(parsed.error_count)
    await repo.insert_batch(
        session,
        {
            "id": batch_id,
            "owner_id": owner_id,
            "endpoint": endpoint,
            "surface": surface,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": BatchStatus.FAILED if failed else BatchStatus.IN_PROGRESS,
            "metadata": metadata,
            "errors": parsed.errors if failed else None,
            "total": 0 if failed else len(parsed.lines),
            "final_counts": _counts({}, 0) if failed else None,
            "created_at": now,
            "expires_at": now + timedelta(hours=hours),
            "in_progress_at": None if failed else now,
            "failed_at": now if failed else None,
        },
    )
    if not failed:
        lines = [(line.line, line.custom_id, line.values) for line in parsed.lines]
        await repo.insert_lines(session, batch_id, owner_id, lines)
    return batch_id


def refuse_if_invalid(parsed: ParsedBatch) -> None:
    """The native surface refuses a bad batch outright (nothing is created) with every line's reason."""
    if parsed.error_count:
        first = parsed.errors[0]
        where = f"line {first['line']}: " if first.get("line") else ""
        raise ValidationFailed(
            f"The batch has {parsed.error_count} invalid line(s); {where}{first['message']}",
            code="invalid_batch",
            details=parsed.errors,
        )


def _counts(by_status: dict[str, int], total: int) -> dict[str, int]:
    return {
        "total": total,
        **{status: by_status.get(status, 0) for status in (*RequestStatus.ACTIVE, *RequestStatus.FINAL)},
    }


async def view(session: AsyncSession, batch: Batch) -> BatchView:
    counts = batch.final_counts or _counts(await repo.line_counts(session, batch.id), batch.total)
    files = await repo.output_file_ids(session, batch.id) if batch.status in BatchStatus.FINAL else {}
    return BatchView(batch, counts, files.get("output"), files.get("error"))


async def get_batch(session: AsyncSession, batch_id: uuid.UUID, owner_id: str | None) -> Batch:
    batch = await repo.get_batch(session, batch_id)
    # Another owner's batch is reported exactly like a missing one.
    if batch is None or batch.owner_id != owner_id:
        raise NotFound(f"No batch with id {batch_id}.")
    return batch


async def list_batches(
    session: AsyncSession, owner_id: str | None, limit: int, after: uuid.UUID | None
) -> tuple[list[BatchView], bool]:
    cursor = await get_batch(session, after, owner_id) if after is not None else None
    rows = await repo.list_batches(session, owner_id, limit + 1, cursor)
    return [await view(session, batch) for batch in rows[:limit]], len(rows) > limit


async def cancel(
    session: AsyncSession, publisher: RequestPublisher, batch_id: uuid.UUID, owner_id: str | None
) -> BatchView:
    """Lines not started end as cancelled at once (in the caller's unit of work, announced as status
    events once committed); running lines finish; the feeder then moves the batch from `cancelling`
    to `cancelled`."""
    batch = await get_batch(session, batch_id, owner_id)
    changes: list[StateChange] = []
    if batch.status != BatchStatus.CANCELLING:
        moved = await repo.set_batch_status(
            session,
            batch_id,
            (BatchStatus.IN_PROGRESS, BatchStatus.VALIDATING),
            status=BatchStatus.CANCELLING,
            cancelling_at=utcnow(),
        )
        if not moved:
            raise Conflict(
                f"The batch is already {batch.status}.",
                code="not_cancellable",
                details={"status": batch.status},
            )
        changes = await requests_repo.end_unstarted_batch_lines(
            session,
            batch_id,
            RequestStatus.CANCELLED,
            "batch_cancelled",
            "The batch was cancelled before this line started.",
        )
    await session.refresh(batch)
    result = await view(session, batch)
    after_commit(session, partial(announce, publisher, changes))
    return result


async def announce(publisher: RequestPublisher, changes: list[StateChange]) -> None:
    """Status events of lines ended here (not by a worker), once committed."""
    await publisher.publish_events(changes)
    for change in changes:
        monitoring.request_finished(change)


# --- finalisation (the feeder calls these for every open batch) -----------------------------------


async def settle(session: AsyncSession, batch: Batch, ended: list[StateChange]) -> str | None:
    """Expire a batch past its window, then finalise it once no line is queued or running.
    Returns the final status it reached, if any; lines it ended are added to `ended` (the caller
    announces them after its commit). Every step is a conditional update."""
    now = utcnow()
    if batch.expires_at <= now and batch.status == BatchStatus.IN_PROGRESS:
        ended += await requests_repo.end_unstarted_batch_lines(
            session,
            batch.id,
            RequestStatus.EXPIRED,
            "batch_expired",
            "The batch's completion window ended before this line ran.",
        )
    if await repo.has_active_lines(session, batch.id):
        return None
    if batch.status == BatchStatus.CANCELLING:
        final, stamp = BatchStatus.CANCELLED, "cancelled_at"
    elif batch.expires_at <= now:
        final, stamp = BatchStatus.EXPIRED, "expired_at"
    else:
        final, stamp = BatchStatus.COMPLETED, "completed_at"
    counts = _counts(await repo.line_counts(session, batch.id), batch.total)
    # Only from the status the decision was made on: a cancel committed since this batch was read
    # (it moved to `cancelling`) must end as cancelled, at the next pass, not as completed.
    moved = await repo.set_batch_status(
        session,
        batch.id,
        (batch.status,),
        status=final,
        final_counts=counts,
        finalizing_at=now,
        **{stamp: now},
    )
    if not moved:
        return None
    await _create_result_files(session, batch, counts)
    return final


async def _create_result_files(session: AsyncSession, batch: Batch, counts: dict[str, int]) -> None:
    """Output and error files are rows only: their content is rendered from the lines on download.
    Their size is measured now, once, by rendering them (the lines are final), so /v1/files reports
    the bytes a download will have."""
    # Imported here: batch_output renders with this module's line helpers.
    from service.usecases.batch_output import openai_file_sizes

    unsuccessful = counts["total"] - counts[RequestStatus.COMPLETED]
    present = {"output": counts[RequestStatus.COMPLETED] > 0, "error": unsuccessful > 0}
    sizes = await openai_file_sizes(session, batch) if any(present.values()) else {}
    for note in ("output", "error"):
        if present[note]:
            await repo.insert_file(
                session,
                {
                    "id": new_file_id(),
                    "owner_id": batch.owner_id,
                    "purpose": "batch_output",
                    "filename": f"batch_{batch.id.hex}_{note}.jsonl",
                    "bytes": sizes[note],
                    "batch_id": batch.id,
                    "created_at": utcnow(),
                    "note": note,
                },
            )


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


# --- results ----------------------------------------------------------------------------------------


async def lines_in_order(session: AsyncSession, batch: Batch) -> AsyncIterator[Any]:
    async for row in repo.stream_lines(session, batch.id):
        yield row


def native_result_line(line: int, custom_id: str, row: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "line": line,
        "custom_id": custom_id,
        "request_id": str(row.id),
        "status": row.status,
    }
    if row.status == RequestStatus.COMPLETED:
        entry["result"] = row.result
    elif row.error_code:
        entry["error"] = {"code": row.error_code, "message": row.error_message}
    return entry


def is_native(batch: Batch) -> bool:
    return batch.endpoint == NATIVE_REQUESTS


def file_of_batch(file: StoredFile) -> tuple[uuid.UUID, str] | None:
    return (file.batch_id, file.note or "output") if file.batch_id is not None else None
