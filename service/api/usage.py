"""GET /api/v1/usage: the caller's own usage; admin keys may name another owner (`?owner=`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from service.api.deps import CallerDep, SessionDep, SettingsDep, owner_scope
from service.api.metrics import OwnerText
from service.usecases.usage import usage_report

router = APIRouter(prefix="/api/v1", tags=["usage"])


@router.get("/usage", summary="Requests, tokens, budgets and cost of the current day and month")
async def usage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    owner: OwnerText = Query(None, description="Admin keys only: a key id (owner), or *."),
) -> dict[str, Any]:
    scope = owner_scope(caller, owner, "usage", session)
    return await usage_report(session, request.app.state.runtime.budgets, settings, scope)
