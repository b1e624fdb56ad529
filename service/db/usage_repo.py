"""SQL for usage and budgets: token spend of one owner over calendar periods.

Both queries use the (owner_id, created_at) index: a request counts in the period it was submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.models import AnalysisRequest, RequestStatus, UsagePurged

_T = AnalysisRequest
_P = UsagePurged


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Tokens of finished work and the number of requests still in flight, per period."""

    tokens: int
    active: int


def _owned(owner_id: str | None) -> list[ColumnElement[bool]]:
    return [] if owner_id is None else [_T.owner_id == owner_id]


async def spend_since(
    session: AsyncSession, owner_id: str, starts: dict[str, datetime]
) -> dict[str, SpendRow]:
    """One statement for every period: {name: (tokens spent, active requests)} since each start."""
    active = _T.status.in_(RequestStatus.ACTIVE)
    columns: list[Any] = []
    for start in starts.values():
        in_period = _T.created_at >= start
        columns.append(func.coalesce(func.sum(case((in_period, _T.total_tokens), else_=0)), 0))
        columns.append(func.coalesce(func.sum(case((in_period & active, 1), else_=0)), 0))
    stmt = select(*columns).where(_T.owner_id == owner_id, _T.created_at >= min(starts.values()))
    row = (await session.execute(stmt)).one()
    purged = await _purged_tokens(session, owner_id, starts)
    return {
        name: SpendRow(int(row[2 * index]) + purged[name], int(row[2 * index + 1]))
        for index, name in enumerate(starts)
    }


def _first_whole_day(start: datetime) -> date:
    """The first day whose purged usage lies wholly after `start` (aggregates are per day)."""
    day = start.date()
    return day if start.time() == time(0) else day + timedelta(1)


async def _purged_tokens(session: AsyncSession, owner_id: str, starts: dict[str, datetime]) -> dict[str, int]:
    """Tokens of purged requests per period (service/usecases/retention.py keeps them per day)."""
    columns = [
        func.coalesce(func.sum(case((_P.day >= _first_whole_day(start), _P.total_tokens), else_=0)), 0)
        for start in starts.values()
    ]
    stmt = select(*columns).where(
        _P.owner_id == owner_id, _P.day >= min(map(_first_whole_day, starts.values()))
    )
    row = (await session.execute(stmt)).one()
    return {name: int(row[index]) for index, name in enumerate(starts)}


@dataclass(frozen=True, slots=True)
class UsageRow:
    status: str
    model: str | None
    today: bool
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # Prompt tokens the provider served from its prompt cache; answers from the answer cache (no
    # tokens of their own) and the tokens they did not spend again.
    cached_prompt_tokens: int = 0
    cached_answers: int = 0
    tokens_saved: int = 0


async def usage_since(
    session: AsyncSession, owner_id: str | None, month_start: datetime, day_start: datetime
) -> list[UsageRow]:
    """Requests and tokens by status and model since `month_start`, split into today and earlier."""
    today = case((_T.created_at >= day_start, 1), else_=0).label("today")
    stmt = (
        select(
            _T.status,
            _T.llm_model,
            today,
            func.count(),
            func.coalesce(func.sum(_T.prompt_tokens), 0),
            func.coalesce(func.sum(_T.completion_tokens), 0),
            func.coalesce(func.sum(_T.total_tokens), 0),
            func.coalesce(func.sum(_T.cached_prompt_tokens), 0),
            func.coalesce(func.sum(case((_T.cached_from.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(_T.tokens_saved), 0),
        )
        .where(_T.created_at >= month_start, *_owned(owner_id))
        .group_by(_T.status, _T.llm_model, today)
    )
    live = [
        UsageRow(status, model, bool(is_today), int(n), int(p), int(c), int(t), int(k), int(a), int(s))
        for status, model, is_today, n, p, c, t, k, a, s in (await session.execute(stmt)).all()
    ]
    # Requests the retention purge removed still count, from their daily aggregates.
    purged_today = case((_P.day >= _first_whole_day(day_start), 1), else_=0).label("today")
    purged = (
        select(
            _P.status,
            _P.model,
            purged_today,
            func.sum(_P.requests),
            func.sum(_P.prompt_tokens),
            func.sum(_P.completion_tokens),
            func.sum(_P.total_tokens),
        )
        .where(
            _P.day >= _first_whole_day(month_start), *([] if owner_id is None else [_P.owner_id == owner_id])
        )
        .group_by(_P.status, _P.model, purged_today)
    )
    return live + [
        UsageRow(status, model or None, bool(is_today), int(n), int(p), int(c), int(t))
        for status, model, is_today, n, p, c, t in (await session.execute(purged)).all()
    ]
