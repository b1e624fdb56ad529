"""Prompt use-cases: categories, template versions, presets, classification, template lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import prompts_repo as repo
from service.db.prompt_models import Category, Origin, Preset
from service.db.prompt_models import PromptTemplate as TemplateRow
from service.errors import Conflict, NotFound, ValidationFailed
from service.llm.base import ChatRequest
from service.pipeline import categories as cat
from service.pipeline import classify_model
from service.pipeline.classify import Classification, Classifier, ClassifierInput
from service.pipeline.prompt import Example, PromptTemplate
from service.pipeline.resources import LANGUAGES, shipped_resources
from service.pipeline.templating import TemplateError, placeholders
from service.usecases import audit


@lru_cache(maxsize=4)
def get_classifier(threshold: float) -> Classifier:
    """One classifier (and so one cache) per process and threshold."""
    return Classifier(threshold=threshold)


def _canonical(name: str, *, allow_uncertain: bool = True) -> str:
    canonical = cat.resolve_category(name)
    if canonical is None or (canonical == cat.UNCERTAIN and not allow_uncertain):
        raise ValidationFailed(f"unknown category {name!r}", details={"allowed": list(cat.ACTIVE_CATEGORIES)})
    return canonical


# --- reading -----------------------------------------------------------------------------------


async def list_categories(session: AsyncSession, *, include_inactive: bool = False) -> Sequence[Category]:
    return await repo.list_categories(session, include_inactive=include_inactive)


async def category_descriptions(session: AsyncSession, language: str = "en") -> dict[str, str]:
    """Active categories and their descriptions for the LLM classification prompt."""
    rows = await repo.list_categories(session)
    if rows:
        return {r.name: (r.description_en if language == "en" else r.description_ru) for r in rows}
    # An unseeded database still classifies: fall back to what the project ships.
    return {c.name: c.description.en for c in shipped_resources().categories if c.active}


async def list_presets(session: AsyncSession, category: str | None, language: str | None) -> Sequence[Preset]:
    name = _canonical(category) if category else None
    if language is not None and language not in LANGUAGES:
        raise ValidationFailed(f"language must be one of {list(LANGUAGES)}")
    return await repo.list_presets(session, category=name, language=language)


async def list_templates(
    session: AsyncSession, category: str | None, language: str | None, *, history: bool
) -> Sequence[TemplateRow]:
    name = _canonical(category) if category else None
    return await repo.list_templates(session, category=name, language=language, history=history)


def to_pipeline_template(row: TemplateRow) -> PromptTemplate:
    examples = tuple(
        Example(
            query=str(e.get("query", "")),
            answer=e.get("answer") or {},
            input_range=e.get("input_range"),
            input_data=e.get("input_data"),
            title=e.get("title"),
            description=e.get("description"),
        )
        for e in (row.examples or [])
        if isinstance(e, dict)
    )
    return PromptTemplate(
        category=row.category,
        language=row.language,
        system=row.system_prompt,
        user=row.user_template,
        examples=examples,
        version=row.version,
        template_id=row.id,
    )


async def load_template(session: AsyncSession, category: str, language: str) -> PromptTemplate:
    """The current template from the database; the shipped file if the database has none.

    Falls back to the other language before the files, because an operator's template in one
    language is a better guide than the project's default.
    """
    for lang in (language, *[other for other in LANGUAGES if other != language]):
        row = await repo.current_template(session, category, lang)
        if row is not None:
            return to_pipeline_template(row)
    return shipped_resources().prompts[category].template(language)


# --- writing (admin-only once API keys exist) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateWrite:
    system_prompt: str
    user_template: str
    examples: list[dict[str, Any]]
    note: str | None = None


def _validate(write: TemplateWrite) -> None:
    try:
        placeholders(write.system_prompt)
        placeholders(write.user_template)
    except TemplateError as exc:
        raise ValidationFailed(f"template is not renderable: {exc}") from exc


def _snapshot(row: TemplateRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": row.id,
        "category": row.category,
        "language": row.language,
        "version": row.version,
        "system_prompt": row.system_prompt,
        "user_template": row.user_template,
        "note": row.note,
        "deleted": row.deleted,
    }


async def _append(
    session: AsyncSession,
    category: str,
    language: str,
    write: TemplateWrite,
    actor: str | None,
    before: TemplateRow | None = None,
) -> TemplateRow:
    _validate(write)
    before_snap = _snapshot(before)
    try:
        row = await repo.add_template_version(
            session,
            {
                "category": category,
                "language": language,
                "system_prompt": write.system_prompt,
                "user_template": write.user_template,
                "examples": write.examples,
                "origin": Origin.OPERATOR,
                "shipped_hash": None,
                "note": write.note,
                "created_by": actor,
            },
        )
    except IntegrityError as exc:
        raise Conflict("the template was changed concurrently; reload and retry") from exc
    action = "prompt.created" if before is None else "prompt.edited"
    audit.record(
        session, actor, action, "prompt", f"{category}/{language}", before=before_snap, after=_snapshot(row)
    )
    return row


async def create_template(
    session: AsyncSession, category: str, language: str, write: TemplateWrite, actor: str | None
) -> TemplateRow:
    name = _canonical(category)
    if language not in LANGUAGES:
        raise ValidationFailed(f"language must be one of {list(LANGUAGES)}")
    if await repo.get_category(session, name) is None:
        raise NotFound(f"category {name!r} is not in the database; run `python -m service seed`")
    return await _append(session, name, language, write, actor)


async def get_template(session: AsyncSession, template_id: int) -> TemplateRow:
    row = await repo.get_template(session, template_id)
    if row is None:
        raise NotFound(f"prompt template {template_id} not found")
    return row


async def update_template(
    session: AsyncSession, template_id: int, write: TemplateWrite, actor: str | None
) -> TemplateRow:
    """Editing never rewrites a version: it appends a new current version of the same template."""
    row = await get_template(session, template_id)
    return await _append(session, row.category, row.language, write, actor, before=row)


async def delete_template(session: AsyncSession, template_id: int, actor: str | None = audit.CLI) -> None:
    row = await get_template(session, template_id)
    if row.deleted:
        raise NotFound(f"prompt template {template_id} is already deleted")
    before = _snapshot(row)
    await repo.delete_template(session, row)
    # Deleting the current version rolls the template back to the one before it.
    audit.record(
        session, actor, "prompt.rolled_back", "prompt", f"{row.category}/{row.language}", before=before
    )


# --- classification ----------------------------------------------------------------------------

AskModel = Callable[[ChatRequest], Awaitable[str]]


async def classify(
    session: AsyncSession | None, inp: ClassifierInput, *, threshold: float, ask: AskModel | None
) -> Classification:
    if not classify_model.is_trained():
        # An API process loads the exported model at the first classification (workers at
        # start-up), in a thread: the event loop keeps serving while it does.
        async with _training:
            await asyncio.to_thread(classify_model.warm_up)
    descriptions = await category_descriptions(session) if session is not None else None
    if descriptions is None:
        descriptions = {c.name: c.description.en for c in shipped_resources().categories if c.active}
    return await get_classifier(threshold).classify(inp, ask=ask, descriptions=descriptions)


_training = asyncio.Lock()
