"""The seed contract's prompt routes: /api/prompts/categories, /presets, /classify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from service.api.deps import RateLimitDep, SessionDep, SettingsDep
from service.api.prompts import CategoryQuery, category_out, preset_out, run_classify
from service.db.prompt_models import Preset
from service.schemas.fields import ColumnText
from service.schemas.prompts import ClassifyIn
from service.usecases import prompt_library as service

PresetLanguage = Annotated[str, ColumnText(Preset.language)] | None

router = APIRouter(prefix="/api/prompts", tags=["compatibility (seed contract)"])


@router.get("/categories", summary="Categories (seed contract)")
async def categories(session: SessionDep) -> dict[str, Any]:
    rows = [category_out(r).model_dump() for r in await service.list_categories(session)]
    return {"success": True, "categories": rows, "total": len(rows)}


@router.get("/presets", summary="Preset prompts, optionally of one category (seed contract)")
async def presets(
    session: SessionDep,
    category: CategoryQuery = None,
    language: Annotated[str, ColumnText(Preset.language)] | None = None,
) -> dict[str, Any]:
    rows = [preset_out(r).model_dump() for r in await service.list_presets(session, category, language)]
    return {"success": True, "presets": rows, "total": len(rows)}


@router.post("/classify", summary="Classify a request text (seed contract)")
async def classify(
    request: Request, session: SessionDep, settings: SettingsDep, payload: ClassifyIn, _limited: RateLimitDep
) -> dict[str, Any]:
    result = await run_classify(request, session, settings, payload)
    return {"success": True, "query_text": payload.query_text, **result.model_dump()}
