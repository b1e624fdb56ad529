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
from service.usecases.model_policy import cost, priced


async def owner_limits(session: AsyncSession, settings: Settings, owner_id: str) -> Limits | None:
    if owner_id == ANONYMOUS_OWNER:
        return anonymous_limits(settings)
    row = await api_keys_repo.get_key(session, owner_id)
    return limits_of(row) if row is not None else None


def _cost(settings: Settings, by_model: dict[str | None, dict[str, int]]) -> dict[str, Any] | None:
    """Cost per the price table (service/usecases/model_policy.py): cached prompt tokens at the
    cached-prompt price, answers from the answer cache at nothing."""
    if not priced(settings):
        return None
    amount, unpriced = 0.0, 0
    for model, tokens in by_model.items():
        spent = cost(settings, model, tokens["prompt"], tokens["completion"], tokens["cached_prompt"])
        if spent is None:
            unpriced += tokens["total"]
        else:
            amount += spent
    return {"amount": round(amount, 6), "unpriced_tokens": unpriced}


def _period(
    rows: list[usage_repo.UsageRow], start: datetime, resets_at: datetime, settings: Settings
) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    tokens = {"prompt": 0, "completion": 0, "total": 0, "cached_prompt": 0}
    cache = {"answers": 0, "tokens_saved": 0}
    by_model: dict[str | None, dict[str, int]] = {}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + row.requests
        figures = {
            "prompt": row.prompt_tokens, "completion": row.completion_tokens, "total": row.total_tokens,
            "cached_prompt": row.cached_prompt_tokens,
        }  # fmt: skip
        model = by_model.setdefault(row.model, dict.fromkeys(figures, 0))
        for name, value in figures.items():
            tokens[name] += value
            model[name] += value
        cache["answers"] += row.cached_answers
        cache["tokens_saved"] += row.tokens_saved
    requests = sum(by_status.values())
    return {
        "start": start,
        "resets_at": resets_at,
        "requests": {"total": requests, "by_status": by_status},
        "tokens": tokens,
        "tokens_by_model": {str(model): t["total"] for model, t in by_model.items() if model is not None},
        # Answers from the answer cache: no tokens billed (they count in no figure above).
        "answer_cache": {**cache, "hit_rate": round(cache["answers"] / requests, 4) if requests else None},
        "cost": _cost(settings, by_model),
        "budget": None,
    }


async def usage_report(
    session: AsyncSession, budgets: Budgets, settings: Settings, owner_id: str | None
) -> dict[str, Any]:
    """One owner's figures (None: every owner, no budgets) for the current UTC day and month."""
    now = utcnow()
    bounds = period_bounds(now)
    rows = await usage_repo.usage_since(session, owner_id, bounds["month"][0], bounds["day"][0])
    periods = {
        "day": _period([r for r in rows if r.today], *bounds["day"], settings),
        "month": _period(rows, *bounds["month"], settings),
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
