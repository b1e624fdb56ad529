"""Usage statistics: counts by status, tokens, errors, processing time (the caller's own requests;
the service-wide view, `?owner=*`, and other owners' figures are for admin keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import CallerDep, SessionDep, SettingsDep, owner_scope
from service.db.models import AnalysisRequest
from service.schemas.fields import ColumnText
from service.usecases.metrics import usage_metrics

router = APIRouter(tags=["metrics"])

Hours = Query(24, ge=1, le=24 * 90, description="Look back this many hours.")
Owner = Query(None, description="Admin keys only: another owner's id, or * for all.")
OwnerText = Annotated[str, ColumnText(AnalysisRequest.owner_id)] | None


@router.get("/api/v1/metrics", summary="Usage statistics")
async def metrics(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    hours: int = Hours,
    owner: OwnerText = Owner,
) -> dict[str, Any]:
    return await usage_metrics(session, owner_scope(caller, owner, "metrics", session), hours, settings)


@router.get(
    "/api/metrics", summary="Usage statistics (seed contract)", tags=["compatibility (seed contract)"]
)
async def metrics_compat(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    hours: int = Hours,
    owner: OwnerText = Owner,
) -> dict[str, Any]:
    scope = owner_scope(caller, owner, "metrics", session)
    return {"success": True, **await usage_metrics(session, scope, hours, settings)}
