"""Build a request's ChatRequest: classify when no category, render the database template.

Called by the worker's Processor. Database reads happen in a short session of their own, so no
connection is held while the model answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db.models import AnalysisRequest, RequestKind
from service.llm.base import ChatRequest, ChatResponse, LLMBackend
from service.pipeline import categories as cat
from service.pipeline.classify import ClassifierInput
from service.pipeline.prompt import PromptInput, build_prompt, detect_language
from service.pipeline.resources import LANGUAGES
from service.services import prompts as prompt_service


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    chat: ChatRequest
    category: str
    template_version: int | None
    # Model calls made while preparing (classification), for the request's accounting.
    responses: tuple[ChatResponse, ...] = ()
    classification_message: str | None = None


def _language(row: AnalysisRequest) -> str:
    requested = (row.options or {}).get("language") if isinstance(row.options, dict) else None
    if requested in LANGUAGES:
        return str(requested)
    return detect_language(row.query_text, row.title, row.description)


async def build_chat(
    row: AnalysisRequest,
    settings: Settings,
    backend: LLMBackend,
    sessions: async_sessionmaker[AsyncSession],
    context: dict[str, Any],
) -> BuiltPrompt:
    responses: list[ChatResponse] = []
    message: str | None = None
    category = cat.resolve_category(row.category) if row.category else None
    if category is None and row.kind == RequestKind.PROCESS_ANALYSIS:
        category = cat.PROCESS_CATEGORY
    if category is None:

        async def ask(request: ChatRequest) -> str:
            response = await backend.chat(request)
            responses.append(response)
            return response.text

        inp = ClassifierInput(query_text=row.query_text or "", input_data=row.input_data)
        async with sessions() as session:
            descriptions = await prompt_service.category_descriptions(session)
        decided = await prompt_service.get_classifier(settings.classifier_llm_threshold).classify(
            inp, ask=ask, descriptions=descriptions
        )
        category, message = decided.category, decided.message
        logger.info(
            "request {} classified as {} ({:.2f}, {})", row.id, category, decided.confidence, decided.source
        )

    language = _language(row)
    async with sessions() as session:
        template = await prompt_service.load_template(session, category, language)
    options = row.options if isinstance(row.options, dict) else {}
    rendered = build_prompt(
        template,
        PromptInput(
            category=category,
            query_text=row.query_text or "",
            input_range=row.input_range,
            input_data=row.input_data,
            title=row.title,
            description=row.description,
            company_size=options.get("company_size"),
            industry=options.get("industry"),
        ),
        table_token_budget=settings.prompt_table_token_budget,
    )
    chat = ChatRequest(
        system=rendered.system,
        user=rendered.user,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_seconds,
        context={**context, "category": category, "language": language},
    )
    return BuiltPrompt(chat, category, rendered.template_version, tuple(responses), message)
