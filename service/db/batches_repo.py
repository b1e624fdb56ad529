"""All SQL about batches, their lines and files. Callers own the session and decide when to commit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batch_models import Batch, BatchLine, BatchStatus, FilePart, Lane, StoredFile
from service.db.models import AnalysisRequest, RequestStatus, utcnow
from service.db.requests_repo import INSERT_COLUMNS, new_request_row

_R = AnalysisRequest
_INSERT_CHUNK = 1000


def owned_by(column: Any, owner_id: str | None) -> ColumnElement[bool]:
    """Rows of exactly this owner; the anonymous owner (None) is an owner of its own."""
    return column.is_(None) if owner_id is None else column == owner_id


# --- batches ---------------------------------------------------------------------------------------


async def insert_batch(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Batch).values(**values))


async def insert_lines(
    session: AsyncSession,
    batch_id: uuid.UUID,
    owner_id: str | None,
    lines: Sequence[tuple[int, str, dict[str, Any]]],
) -> None:
    """The batch's request rows (held back from the broker until the feeder releases them) and their
    places in the batch, inside the caller's transaction. On PostgreSQL by COPY (10,000 rows in a
    fraction of the time multi-row INSERTs take); elsewhere by INSERTs in chunks."""
    connection = await session.connection()
    copy = connection.dialect.name == "postgresql"
    for start in range(0, len(lines), _INSERT_CHUNK):
        rows, places = [], []
        for line, custom_id, values in lines[start : start + _INSERT_CHUNK]:
            request_id = uuid.uuid4()
            row = new_request_row(
                {
                    **values,
                    "id": request_id,
                    "owner_id": owner_id,
                    "batch_id": batch_id,
                    "priority": Lane.BATCH_HELD,
                    "trace_id": request_id.hex,
                }
            )
            rows.append(row)
            places.append(
                {"batch_id": batch_id, "line": line, "custom_id": custom_id, "request_id": request_id}
            )
        if copy:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.copy_records_to_table(
                "requests", records=[_copy_record(row) for row in rows], columns=INSERT_COLUMNS
            )
            await raw.copy_records_to_table(
                "batch_lines", records=[tuple(place.values()) for place in places], columns=list(places[0])
            )
        else:
            await session.execute(insert(_R), rows)
            await session.execute(insert(BatchLine), places)


_JSON_COLUMNS = frozenset({"input_data", "options"})


def _copy_record(row: dict[str, Any]) -> tuple[Any, ...]:
    # The connection's JSONB codec (SQLAlchemy's) takes JSON text.
    return tuple(
        orjson.dumps(row[name]).decode() if name in _JSON_COLUMNS and row[name] is not None else row[name]
        for name in INSERT_COLUMNS
    )


async def get_batch(session: AsyncSession, batch_id: uuid.UUID) -> Batch | None:
    return await session.get(Batch, batch_id)


async def list_batches(
    session: AsyncSession, owner_id: str | None, limit: int, after: Batch | None
) -> list[Batch]:
    """Newest first; `after` is the last batch of the previous page."""
    stmt = select(Batch).where(owned_by(Batch.owner_id, owner_id))
    if after is not None:
        stmt = stmt.where(
            (Batch.created_at < after.created_at)
            | ((Batch.created_at == after.created_at) & (Batch.id < after.id))
        )
    stmt = stmt.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def line_counts(session: AsyncSession, batch_id: uuid.UUID) -> dict[str, int]:
    stmt = select(_R.status, func.count()).where(_R.batch_id == batch_id).group_by(_R.status)
    return {status: count for status, count in (await session.execute(stmt)).all()}


async def set_batch_status(
    session: AsyncSession, batch_id: uuid.UUID, from_statuses: Sequence[str], **values: Any
) -> bool:
    """One conditional update: the batch moves only from one of `from_statuses` (race-safe)."""
    stmt = update(Batch).where(Batch.id == batch_id, Batch.status.in_(from_statuses)).values(**values)
    return (await session.execute(stmt.execution_options(synchronize_session=False))).rowcount == 1  # type: ignore[attr-defined]


async def open_batches(session: AsyncSession) -> list[Batch]:
    return list((await session.execute(select(Batch).where(Batch.status.in_(BatchStatus.OPEN)))).scalars())


async def has_active_lines(session: AsyncSession, batch_id: uuid.UUID) -> bool:
    stmt = select(exists().where(_R.batch_id == batch_id, _R.status.in_(RequestStatus.ACTIVE)))
    return bool((await session.execute(stmt)).scalar())


async def stream_lines(session: AsyncSession, batch_id: uuid.UUID) -> AsyncIterator[Any]:
    """(line, custom_id, request row) in line order, streamed from the database in chunks."""
    stmt = (
        select(BatchLine.line, BatchLine.custom_id, _R)
        .join(_R, _R.id == BatchLine.request_id)
        .where(BatchLine.batch_id == batch_id)
        .order_by(BatchLine.line)
        .execution_options(yield_per=500)
    )
    result = await session.stream(stmt)
    async for row in result:
        yield row


# --- the batch lane: releasing held lines fairly ------------------------------------------------------


@dataclass(slots=True)
class Occupancy:
    """One owner's batch lines: in the lane (published, not final), of those still queued, held."""

    in_lane: int = 0
    queued_in_lane: int = 0
    held: int = 0


async def lane_occupancy(session: AsyncSession) -> dict[str | None, Occupancy]:
    """Per owner with held lines or lines in the lane; empty when no owner has lines held."""
    held = (
        select(_R.owner_id, func.count())
        .where(_R.priority == Lane.BATCH_HELD, _R.status == RequestStatus.QUEUED)
        .group_by(_R.owner_id)
    )
    waiting = {owner: count for owner, count in (await session.execute(held)).all()}
    if not waiting:
        return {}
    occupancy = {owner: Occupancy(held=count) for owner, count in waiting.items()}
    in_lane = (
        select(_R.owner_id, _R.status, func.count())
        .where(_R.priority == Lane.BATCH, _R.status.in_(RequestStatus.ACTIVE))
        .group_by(_R.owner_id, _R.status)
    )
    for owner, status, count in (await session.execute(in_lane)).all():
        entry = occupancy.setdefault(owner, Occupancy())
        entry.in_lane += count
        if status == RequestStatus.QUEUED:
            entry.queued_in_lane += count
    return occupancy


async def release_lines(
    session: AsyncSession, owner_id: str | None, count: int
) -> list[tuple[uuid.UUID, str]]:
    """The owner's next `count` held lines (oldest batch first, in line order) move to the lane.
    Conditional on still being held, so two feeders never release one line twice."""
    candidates = (
        select(_R.id)
        .join(BatchLine, BatchLine.request_id == _R.id)
        .where(
            _R.priority == Lane.BATCH_HELD, _R.status == RequestStatus.QUEUED, owned_by(_R.owner_id, owner_id)
        )
        .order_by(_R.created_at, BatchLine.batch_id, BatchLine.line)
        .limit(count)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    stmt = (
        update(_R)
        .where(_R.id.in_(ids), _R.priority == Lane.BATCH_HELD, _R.status == RequestStatus.QUEUED)
        .values(priority=Lane.BATCH, updated_at=utcnow())
        .returning(_R.id, _R.kind)
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


# --- files -------------------------------------------------------------------------------------------


async def insert_file(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(StoredFile).values(**values))


async def insert_part(session: AsyncSession, file_id: str, seq: int, data: bytes) -> None:
    await session.execute(insert(FilePart).values(file_id=file_id, seq=seq, data=data))


async def get_file(session: AsyncSession, file_id: str) -> StoredFile | None:
    row = await session.get(StoredFile, file_id)
    return None if row is None or row.deleted else row


async def list_files(
    session: AsyncSession,
    owner_id: str | None,
    purpose: str | None,
    limit: int,
    after: StoredFile | None,
    newest_first: bool,
) -> list[StoredFile]:
    stmt = select(StoredFile).where(owned_by(StoredFile.owner_id, owner_id), StoredFile.deleted.is_(False))
    if purpose:
        stmt = stmt.where(StoredFile.purpose == purpose)
    if after is not None:
        if newest_first:
            stmt = stmt.where(
                (StoredFile.created_at < after.created_at)
                | ((StoredFile.created_at == after.created_at) & (StoredFile.id < after.id))
            )
        else:
            stmt = stmt.where(
                (StoredFile.created_at > after.created_at)
                | ((StoredFile.created_at == after.created_at) & (StoredFile.id > after.id))
            )
    order = (
        (StoredFile.created_at.desc(), StoredFile.id.desc())
        if newest_first
        else (StoredFile.created_at, StoredFile.id)
    )
    return list((await session.execute(stmt.order_by(*order).limit(limit))).scalars())


async def delete_file(session: AsyncSession, file_id: str) -> None:
    await session.execute(delete(FilePart).where(FilePart.file_id == file_id))
    await session.execute(update(StoredFile).where(StoredFile.id == file_id).values(deleted=True))


async def file_parts(session: AsyncSession, file_id: str) -> AsyncIterator[bytes]:
    """The stored parts in order, one at a time (a part is about a megabyte)."""
    seqs = (
        await session.execute(select(FilePart.seq).where(FilePart.file_id == file_id).order_by(FilePart.seq))
    ).scalars()
    for seq in list(seqs):
        data = (
            await session.execute(
                select(FilePart.data).where(and_(FilePart.file_id == file_id, FilePart.seq == seq))
            )
        ).scalar_one()
        yield bytes(data)


async def output_file_ids(session: AsyncSession, batch_id: uuid.UUID) -> dict[str, str]:
    """purpose → id of the batch's output and error files."""
    stmt = select(StoredFile.purpose, StoredFile.note, StoredFile.id).where(StoredFile.batch_id == batch_id)
    return {note or purpose: file_id for purpose, note, file_id in (await session.execute(stmt)).all()}
