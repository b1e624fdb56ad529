"""Read-only figures over the requests table: queue position and depth per lane, usage metrics.
(All SQL lives in service/db; the state changes of a request are in requests_repo.)"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.models import AnalysisRequest, RequestStatus

_T = AnalysisRequest


# --- queue position ------------------------------------------------------------------------------

INTERACTIVE_LANE, BATCH_LANE = "interactive", "batch"


def lane_of(batch_id: uuid.UUID | None) -> str:
    """Batch lines travel on their own lane (topic); everything else is interactive."""
    return INTERACTIVE_LANE if batch_id is None else BATCH_LANE


def _in_lane(lane: str) -> ColumnElement[bool]:
    return _T.batch_id.is_(None) if lane == INTERACTIVE_LANE else _T.batch_id.is_not(None)


async def queue_position(session: AsyncSession, request_id: uuid.UUID, cap: int) -> tuple[str, int] | None:
    """(lane, queued requests of that lane submitted before it) for a queued request, else None.
    The count walks the lane's partial index (migration 0005) and stops at `cap`: its cost is
    bounded whatever the queue's length."""
    mine = (
        await session.execute(
            select(_T.batch_id, _T.created_at).where(_T.id == request_id, _T.status == RequestStatus.QUEUED)
        )
    ).first()
    if mine is None:
        return None
    lane = lane_of(mine[0])
    ahead = (
        select(_T.id)
        .where(_T.status == RequestStatus.QUEUED, _in_lane(lane), _T.created_at < mine[1])
        .limit(cap)
        .subquery()
    )
    return lane, int(await session.scalar(select(func.count()).select_from(ahead)) or 0)


async def queued_by_lane(session: AsyncSession) -> dict[str, int]:
    """Queue depth per lane, for the metrics (the lanes' partial indexes hold exactly these rows)."""
    return {
        lane: int(
            await session.scalar(
                select(func.count()).select_from(_T).where(_T.status == RequestStatus.QUEUED, _in_lane(lane))
            )
            or 0
        )
        for lane in (INTERACTIVE_LANE, BATCH_LANE)
    }


# --- usage metrics -------------------------------------------------------------------------------


def _owned_by(owner_id: str | None) -> list[ColumnElement[bool]]:
    """No condition for unidentified callers; otherwise only the owner's rows."""
    return [] if owner_id is None else [_T.owner_id == owner_id]


async def status_counts(session: AsyncSession, owner_id: str | None, since: datetime) -> dict[str, int]:
    stmt = select(_T.status, func.count()).where(_T.created_at >= since).group_by(_T.status)
    stmt = stmt.where(*_owned_by(owner_id))
    return {status: count for status, count in (await session.execute(stmt)).all()}


async def error_counts(session: AsyncSession, owner_id: str | None, since: datetime) -> dict[str, int]:
    stmt = (
        select(_T.error_code, func.count())
        .where(_T.created_at >= since, _T.error_code.is_not(None))
        .group_by(_T.error_code)
    )
    stmt = stmt.where(*_owned_by(owner_id))
    return {str(code): count for code, count in (await session.execute(stmt)).all()}


async def token_totals(session: AsyncSession, owner_id: str | None, since: datetime) -> dict[str, int]:
    stmt = select(
        func.coalesce(func.sum(_T.prompt_tokens), 0),
        func.coalesce(func.sum(_T.completion_tokens), 0),
        func.coalesce(func.sum(_T.total_tokens), 0),
    ).where(_T.created_at >= since)
    stmt = stmt.where(*_owned_by(owner_id))
    prompt, completion, total = (await session.execute(stmt)).one()
    return {"prompt": int(prompt), "completion": int(completion), "total": int(total)}


async def cost_figures(
    session: AsyncSession, owner_id: str | None, since: datetime
) -> list[tuple[str | None, int, int, int, int, int]]:
    """(model, prompt, completion, cached prompt tokens, requests, answer-cache hits) per model."""
    stmt = (
        select(
            _T.llm_model,
            func.coalesce(func.sum(_T.prompt_tokens), 0),
            func.coalesce(func.sum(_T.completion_tokens), 0),
            func.coalesce(func.sum(_T.cached_prompt_tokens), 0),
            func.count(),
            func.coalesce(func.sum(case((_T.cached_from.is_not(None), 1), else_=0)), 0),
        )
        .where(_T.created_at >= since, *_owned_by(owner_id))
        .group_by(_T.llm_model)
    )
    return [
        (m, int(p), int(c), int(k), int(n), int(h))
        for m, p, c, k, n, h in (await session.execute(stmt)).all()
    ]


async def recent_processing_spans(
    session: AsyncSession, owner_id: str | None, since: datetime, limit: int = 5000
) -> list[tuple[datetime, datetime]]:
    """(started_at, finished_at) of the latest completed requests; durations are computed in Python
    because timestamp arithmetic differs between PostgreSQL and SQLite."""
    stmt = (
        select(_T.started_at, _T.finished_at)
        .where(_T.status == RequestStatus.COMPLETED, _T.created_at >= since, _T.started_at.is_not(None))
        .order_by(_T.finished_at.desc())
        .limit(limit)
    )
    stmt = stmt.where(*_owned_by(owner_id))
    return [
        (started, finished)
        for started, finished in (await session.execute(stmt)).all()
        if started and finished
    ]
