"""GET /api/v1/usage: requests and tokens per day and month, remaining budgets, cost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.callers.budgets import Budgets, period_bounds
from service.callers.model import ANONYMOUS_OWNER, Limits, anonymous_limits, limits_of
from service.config import Settings
from service.db import api_keys_repo, usage_repo
from service.db.models import utcnow


async def owner_limits(session: AsyncSession, settings: Settings, owner_id: str) -> Limits | None:
    if owner_id == ANONYMOUS_OWNER:
        return anonymous_limits(settings)
    row = await api_keys_repo.get_key(session, owner_id)
    return limits_of(row) if row is not None else None


def _cost(tokens_by_model: dict[str | None, int], prices: dict[str, float]) -> dict[str, Any] | None:
    if not prices:
        return None
    priced = {model: tokens for model, tokens in tokens_by_model.items() if model in prices}
    return {
        "amount": round(sum(tokens / 1000 * prices[str(model)] for model, tokens in priced.items()), 6),
        "unpriced_tokens": sum(t for m, t in tokens_by_model.items() if m not in prices),
    }


def _period(
    rows: list[usage_repo.UsageRow], start: datetime, resets_at: datetime, prices: dict[str, float]
) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    tokens = {"prompt": 0, "completion": 0, "total": 0}
    by_model: dict[str | None, int] = {}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + row.requests
        tokens["prompt"] += row.prompt_tokens
        tokens["completion"] += row.completion_tokens
        tokens["total"] += row.total_tokens
        by_model[row.model] = by_model.get(row.model, 0) + row.total_tokens
    return {
        "start": start,
        "resets_at": resets_at,
        "requests": {"total": sum(by_status.values()), "by_status": by_status},
        "tokens": tokens,
        "tokens_by_model": {str(model): n for model, n in by_model.items() if model is not None},
        "cost": _cost(by_model, prices),
        "budget": None,
    }


async def usage_report(
    session: AsyncSession, budgets: Budgets, settings: Settings, owner_id: str | None
) -> dict[str, Any]:
    """One owner's figures (None: every owner, no budgets) for the current UTC day and month."""
    now = utcnow()
    bounds = period_bounds(now)
    rows = await usage_repo.usage_since(session, owner_id, bounds["month"][0], bounds["day"][0])
    prices = settings.llm_price_per_1k_tokens
    periods = {
        "day": _period([r for r in rows if r.today], *bounds["day"], prices),
        "month": _period(rows, *bounds["month"], prices),
    }
    limits = await owner_limits(session, settings, owner_id) if owner_id is not None else None
    if limits is not None:
        for period in await budgets.periods(owner_id or "", limits, now):
            if period.name in periods:
                periods[period.name]["budget"] = {
                    "limit": period.limit,
                    "spent": period.spent,
                    "reserved_in_flight": period.reserved,
                    "remaining": period.remaining,
                }
    return {
        "owner": owner_id if owner_id is not None else "*",
        "limits": {
            "requests_per_minute": (
                limits.requests_per_minute
                if limits and limits.requests_per_minute is not None
                else settings.rate_limit_requests_per_minute
            ),
            "tokens_per_minute": limits.tokens_per_minute if limits else None,
            "daily_tokens": limits.daily_tokens if limits else None,
            "monthly_tokens": limits.monthly_tokens if limits else None,
        },
        **periods,
    }
