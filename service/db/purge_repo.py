"""SQL of the retention purge and the owner erasure. Every function works on a bounded set of rows
(ids picked first, `LIMIT n`), so each transaction holds its locks briefly. Callers own the session.

The audit log is never touched here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import console_repo
from service.db.batch_models import Batch, BatchLine, BatchStatus, FilePart, StoredFile
from service.db.feedback_models import Feedback
from service.db.key_models import ApiKey
from service.db.models import AnalysisRequest, RequestStatus, UsagePurged, utcnow
from service.db.webhook_models import WebhookDelivery

_T = AnalysisRequest
_FINAL = list(RequestStatus.FINAL)
_BATCH_FINAL = list(BatchStatus.FINAL)


async def shorter_retention(session: AsyncSession, days: int) -> Sequence[tuple[str, int]]:
    """Keys whose own retention is shorter than the setting's: (owner id, days)."""
    stmt = select(ApiKey.id, ApiKey.retention_days).where(ApiKey.retention_days < days)
    return [(key, int(n or 0)) for key, n in (await session.execute(stmt)).all()]


async def lock_finished(
    session: AsyncSession, cutoff: datetime, limit: int, owner_id: str | None = None
) -> list[uuid.UUID]:
    """Up to `limit` finished interactive requests that ended before `cutoff`, locked (others
    holding one are skipped, not waited for). Batch rows go with their batch."""
    stmt = select(_T.id).where(_T.status.in_(_FINAL), _T.batch_id.is_(None), _T.finished_at < cutoff)
    if owner_id is not None:
        # created_at <= finished_at, so the owner's (owner_id, created_at) index narrows the scan.
        stmt = stmt.where(_T.owner_id == owner_id, _T.created_at < cutoff)
    stmt = stmt.limit(limit).with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def lock_batch_rows(session: AsyncSession, batch_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    stmt = select(_T.id).where(_T.batch_id == batch_id).limit(limit).with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def lock_owner_rows(session: AsyncSession, owner_id: str, limit: int) -> list[uuid.UUID]:
    stmt = select(_T.id).where(_T.owner_id == owner_id).limit(limit).with_for_update()
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True, slots=True)
class Rolled:
    requests: int
    groups: int


async def roll_up(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Rolled:
    """Adds the usage of `ids` to usage_purged (per day submitted, owner, status, model)."""
    dialect = session.get_bind().dialect.name
    # The UTC day it was submitted (PostgreSQL's date() would use the session's time zone).
    day = (
        func.date(func.timezone("UTC", _T.created_at))
        if dialect == "postgresql"
        else func.date(_T.created_at)
    )
    owner = func.coalesce(_T.owner_id, "")
    model = func.coalesce(_T.llm_model, "")
    stmt = (
        select(
            day,
            owner,
            _T.status,
            model,
            func.count(),
            func.coalesce(func.sum(_T.prompt_tokens), 0),
            func.coalesce(func.sum(_T.completion_tokens), 0),
            func.coalesce(func.sum(_T.total_tokens), 0),
        )
        .where(_T.id.in_(list(ids)))
        .group_by(day, owner, _T.status, model)
    )
    groups = (await session.execute(stmt)).all()
    if not groups:
        return Rolled(0, 0)
    values = [
        {
            "day": d if isinstance(d, date) else date.fromisoformat(str(d)),
            "owner_id": owner,
            "status": status,
            "model": model,
            "requests": int(n),
            "prompt_tokens": int(p),
            "completion_tokens": int(c),
            "total_tokens": int(t),
        }
        for d, owner, status, model, n, p, c, t in groups
    ]
    # The console's per-day rollup (usage_days) sums closed days from requests on first view: sum
    # the days about to lose rows now, while the rows are still there.
    days = sorted({v["day"] for v in values})
    open_day = (await console_repo.open_since(session, utcnow())).date()
    if days[0] < open_day:
        await console_repo.roll_up(session, days[0], min(days[-1] + timedelta(days=1), open_day))
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt_in = insert(UsagePurged).values(values)
    excluded = stmt_in.excluded
    stmt_in = stmt_in.on_conflict_do_update(
        index_elements=["day", "owner_id", "status", "model"],
        set_={
            name: getattr(UsagePurged, name) + getattr(excluded, name)
            for name in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
        },
    )
    await session.execute(stmt_in)
    return Rolled(sum(v["requests"] for v in values), len(values))


async def delete_requests(session: AsyncSession, ids: Sequence[uuid.UUID]) -> int:
    """Deletes the requests and what hangs off them (feedback, webhook deliveries). Never a request
    that is not final (the status is checked again in the statement itself)."""
    id_list = list(ids)
    if not id_list:
        return 0
    await session.execute(delete(Feedback).where(Feedback.request_id.in_(id_list)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.request_id.in_(id_list)))
    result: Any = await session.execute(delete(_T).where(_T.id.in_(id_list), _T.status.in_(_FINAL)))
    return int(result.rowcount or 0)


def _ended_at() -> Any:
    return func.coalesce(Batch.completed_at, Batch.failed_at, Batch.expired_at, Batch.cancelled_at)


async def ended_batches(
    session: AsyncSession, cutoff: datetime, limit: int, owner_id: str | None = None
) -> list[uuid.UUID]:
    stmt = select(Batch.id).where(Batch.status.in_(_BATCH_FINAL), _ended_at() < cutoff)
    if owner_id is not None:
        stmt = stmt.where(Batch.owner_id == owner_id)
    return list((await session.execute(stmt.limit(limit))).scalars())


async def delete_batch(session: AsyncSession, batch_id: uuid.UUID) -> int:
    """The batch, its lines and its output and error files (its requests must be gone already)."""
    files = list(
        (await session.execute(select(StoredFile.id).where(StoredFile.batch_id == batch_id))).scalars()
    )
    removed = await delete_files(session, files)
    await session.execute(delete(BatchLine).where(BatchLine.batch_id == batch_id))
    await session.execute(delete(Batch).where(Batch.id == batch_id))
    return removed


async def expired_files(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    stmt = select(StoredFile.id).where(StoredFile.expires_at.is_not(None), StoredFile.expires_at < now)
    return list((await session.execute(stmt.limit(limit))).scalars())


async def delete_files(session: AsyncSession, file_ids: Sequence[str]) -> int:
    if not file_ids:
        return 0
    # Parts explicitly: SQLite does not enforce ON DELETE CASCADE without a pragma.
    await session.execute(delete(FilePart).where(FilePart.file_id.in_(list(file_ids))))
    result: Any = await session.execute(delete(StoredFile).where(StoredFile.id.in_(list(file_ids))))
    return int(result.rowcount or 0)
