"""Usage statistics: counts by status, tokens, errors, processing time (the caller's own requests)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from service.api.deps import OwnerDep, SessionDep
from service.services.metrics import usage_metrics

router = APIRouter(tags=["metrics"])

Hours = Query(24, ge=1, le=24 * 90, description="Look back this many hours.")


@router.get("/api/v1/metrics", summary="Usage statistics")
async def metrics(session: SessionDep, owner_id: OwnerDep, hours: int = Hours) -> dict[str, Any]:
    return await usage_metrics(session, owner_id, hours)


@router.get(
    "/api/metrics", summary="Usage statistics (seed contract)", tags=["compatibility (seed contract)"]
)
async def metrics_compat(session: SessionDep, owner_id: OwnerDep, hours: int = Hours) -> dict[str, Any]:
    return {"success": True, **await usage_metrics(session, owner_id, hours)}
