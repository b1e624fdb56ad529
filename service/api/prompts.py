"""Versioned routes for categories, prompt templates, presets and classification. Thin by design."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from service.api.deps import AdminDep, RateLimitDep, SessionDep, SettingsDep, get_caller
from service.api.errors import CONFLICT_RESPONSE
from service.db.prompt_models import Category, Preset
from service.db.prompt_models import PromptTemplate as TemplateRow
from service.llm.base import ChatRequest, LLMError
from service.pipeline.classify import ClassifierInput
from service.runtime import Runtime
from service.schemas.fields import ColumnText, IdPath, LanguageCode
from service.schemas.prompts import (
    CategoryOut,
    ClassifyIn,
    ClassifyOut,
    PresetOut,
    TemplateCreate,
    TemplateIn,
    TemplateOut,
)
from service.usecases import prompt_library as service

router = APIRouter(prefix="/api/v1", tags=["prompts"])


async def require_prompt_admin(caller: AdminDep) -> str | None:
    """Template writes need an admin key (403 otherwise). Returns the actor to record."""
    return caller.key_id


PromptAdminDep = Annotated[str | None, Depends(require_prompt_admin)]
TemplateId = Annotated[int, IdPath(TemplateRow.id, "Id of one template version")]
CategoryQuery = Annotated[str, ColumnText(TemplateRow.category)] | None
LanguageQuery = LanguageCode | None


def category_out(row: Category) -> CategoryOut:
    return CategoryOut(
        name=row.name,
        display_name={"ru": row.display_name_ru, "en": row.display_name_en},
        description={"ru": row.description_ru, "en": row.description_en},
        active=row.active,
        sort_order=row.sort_order,
        output_schema=row.output_schema,
        origin=row.origin,
    )


def template_out(row: TemplateRow) -> TemplateOut:
    return TemplateOut(
        id=row.id, category=row.category, language=row.language, version=row.version,
        system_prompt=row.system_prompt, user_template=row.user_template, examples=row.examples or [],
        is_current=row.is_current, deleted=row.deleted, origin=row.origin, note=row.note,
        created_by=row.created_by, created_at=row.created_at,
    )  # fmt: skip


def preset_out(row: Preset) -> PresetOut:
    return PresetOut(
        id=row.id, category=row.category, name=row.name, language=row.language, title=row.title,
        prompt=row.prompt, sort_order=row.sort_order,
    )  # fmt: skip


@router.get("/categories", response_model=list[CategoryOut], summary="Request categories")
async def list_categories(session: SessionDep, include_inactive: bool = False) -> list[CategoryOut]:
    return [
        category_out(r) for r in await service.list_categories(session, include_inactive=include_inactive)
    ]


@router.get("/presets", response_model=list[PresetOut], summary="Ready-made requests a plugin can offer")
async def list_presets(
    session: SessionDep, category: CategoryQuery = None, language: LanguageQuery = None
) -> list[PresetOut]:
    return [preset_out(r) for r in await service.list_presets(session, category, language)]


@router.get("/prompts", response_model=list[TemplateOut], summary="Prompt templates (current versions)")
async def list_templates(
    session: SessionDep, category: CategoryQuery = None, language: LanguageQuery = None, history: bool = False
) -> list[TemplateOut]:
    rows = await service.list_templates(session, category, language, history=history)
    return [template_out(r) for r in rows]


@router.get("/prompts/{template_id}", response_model=TemplateOut, summary="One template version")
async def get_template(template_id: TemplateId, session: SessionDep) -> TemplateOut:
    return template_out(await service.get_template(session, template_id))


@router.post(
    "/prompts",
    status_code=201,
    response_model=TemplateOut,
    summary="Add a template version",
    responses=CONFLICT_RESPONSE,
)
async def create_template(payload: TemplateCreate, session: SessionDep, actor: PromptAdminDep) -> TemplateOut:
    write = service.TemplateWrite(
        payload.system_prompt, payload.user_template, payload.examples, payload.note
    )
    return template_out(
        await service.create_template(session, payload.category, payload.language, write, actor)
    )


@router.put(
    "/prompts/{template_id}",
    response_model=TemplateOut,
    summary="Edit: adds a new current version",
    responses=CONFLICT_RESPONSE,
)
async def update_template(
    template_id: TemplateId, payload: TemplateIn, session: SessionDep, actor: PromptAdminDep
) -> TemplateOut:
    write = service.TemplateWrite(
        payload.system_prompt, payload.user_template, payload.examples, payload.note
    )
    return template_out(await service.update_template(session, template_id, write, actor))


@router.delete("/prompts/{template_id}", status_code=204, summary="Delete a version (kept in history)")
async def delete_template(template_id: TemplateId, session: SessionDep, actor: PromptAdminDep) -> Response:
    await service.delete_template(session, template_id, actor)
    return Response(status_code=204)


class BudgetSpent(LLMError):
    """The caller's token budget is spent: the classifier keeps to its local guess."""

    code = "budget_exceeded"


async def run_classify(
    request: Request, session: SessionDep, settings: SettingsDep, payload: ClassifyIn
) -> ClassifyOut:
    """Shared by /api/v1/classify and the seed's /api/prompts/classify."""
    rt: Runtime = request.app.state.runtime
    backend, budgets = rt.llm, rt.budgets
    owner_id = (await get_caller(request)).owner_id

    async def ask(chat: ChatRequest) -> str:
        # Classification costs tokens too: it must not be a way around a spent budget (checked
        # only when the model would be asked, so a confident local answer costs no query).
        refusal = await budgets.refusal_for(owner_id)
        if refusal is not None:
            raise BudgetSpent(refusal)
        # The seed's GIGACHAT_CLASSIFY_MODEL: classification may run on a cheaper model.
        return str((await backend.chat(replace(chat, model=settings.llm_classify_model))).text)

    inp = ClassifierInput(payload.query_text, payload.input_data, payload.title, payload.description)
    decided = await service.classify(session, inp, threshold=settings.classifier_llm_threshold, ask=ask)
    category = next((c for c in await service.list_categories(session, include_inactive=True)
                     if c.name == decided.category), None)  # fmt: skip
    display: dict[str, Any] | None = (
        {"ru": category.display_name_ru, "en": category.display_name_en} if category else None
    )
    return ClassifyOut(category=decided.category, confidence=decided.confidence, source=decided.source,
                       message=decided.message, display_name=display)  # fmt: skip


@router.post("/classify", response_model=ClassifyOut, summary="Classify a request without submitting it")
async def classify(
    request: Request, session: SessionDep, settings: SettingsDep, payload: ClassifyIn, _limited: RateLimitDep
) -> ClassifyOut:
    return await run_classify(request, session, settings, payload)
