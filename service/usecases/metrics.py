"""Usage statistics for /api/v1/metrics and the seed's /api/metrics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db import feedback_repo
from service.db import request_stats_repo as stats_repo
from service.db.models import utcnow
from service.usecases.model_policy import cost, priced


def _percentile(sorted_values: list[float], share: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(share * (len(sorted_values) - 1)))
    return round(sorted_values[index], 3)


async def usage_metrics(
    session: AsyncSession, owner_id: str | None, hours: int, settings: Settings | None = None
) -> dict[str, Any]:
    since = utcnow() - timedelta(hours=hours)
    statuses = await stats_repo.status_counts(session, owner_id, since)
    durations = sorted(
        (finished - started).total_seconds()
        for started, finished in await stats_repo.recent_processing_spans(session, owner_id, since)
    )
    return {
        "window_hours": hours,
        "requests": {"total": sum(statuses.values()), "by_status": statuses},
        "tokens": await stats_repo.token_totals(session, owner_id, since),
        **await cost_metrics(session, settings, owner_id, since),
        "errors": await stats_repo.error_counts(session, owner_id, since),
        "processing_seconds": {
            "count": len(durations),
            "avg": round(sum(durations) / len(durations), 3) if durations else None,
            "p50": _percentile(durations, 0.5),
            "p95": _percentile(durations, 0.95),
        },
        "feedback": await feedback_metrics(session, owner_id, since),
    }


async def cost_metrics(
    session: AsyncSession, settings: Settings | None, owner_id: str | None, since: datetime
) -> dict[str, Any]:
    """The answer cache's hit rate and, with a price table, the cost of the window's tokens."""
    rows = await stats_repo.cost_figures(session, owner_id, since)
    requests, hits = sum(r[4] for r in rows), sum(r[5] for r in rows)
    amount: float | None = None
    if settings is not None and priced(settings):
        amount = round(sum(cost(settings, m, p, c, k) or 0.0 for m, p, c, k, _, _ in rows), 6)
    return {
        "answer_cache": {"hits": hits, "hit_rate": round(hits / requests, 4) if requests else None},
        "cost": amount,
    }


async def feedback_metrics(session: AsyncSession, owner_id: str | None, since: datetime) -> dict[str, Any]:
    """Ratings given in the window, per category and template version: whether an edit of a
    template made answers better shows as the share of `good` between its versions."""
    groups: dict[tuple[str | None, int | None], dict[str, int]] = {}
    for category, version, rating, count in await feedback_repo.rating_counts(session, owner_id, since):
        counts = groups.setdefault((category, version), {"good": 0, "bad": 0})
        counts[rating] = counts.get(rating, 0) + count
    rows = [
        {
            "category": category,
            "template_version": version,
            **counts,
            "total": sum(counts.values()),
            "good_share": round(counts["good"] / sum(counts.values()), 3),
        }
        for (category, version), counts in sorted(
            groups.items(), key=lambda item: (str(item[0][0]), item[0][1] or 0)
        )
    ]
    return {
        "good": sum(row["good"] for row in rows),
        "bad": sum(row["bad"] for row in rows),
        "by_category_version": rows,
    }
