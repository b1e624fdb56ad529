"""The template machinery of kinds with categories: classify when no category, render the
database template (kinds.base.Prompts; the kinds call it from their `prompt`).

Used by the worker's Processor. Templates and category descriptions come from a short-lived
per-worker cache (`PromptSources`), so the database is read once per TTL, not once per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Generic, TypeVar

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db.requests_repo import ClaimedRequest
from service.kinds.base import BuiltPrompt, Kind
from service.llm.base import ChatRequest, ChatResponse, LLMBackend, LLMError
from service.pipeline import categories as cat
from service.pipeline.classify import ClassifierInput
from service.pipeline.prompt import PromptInput, PromptTemplate, build_prompt, detect_language
from service.pipeline.resources import LANGUAGES
from service.usecases import prompt_library as prompt_service

# How long a worker keeps using a template it read. Reading the current template on every request
# cost ~13% of the worker's CPU and a transaction per request; with this TTL an operator's edit
# (a new template version through the API) reaches every worker within 15 seconds, and each
# request still records the version it was actually built from.
TEMPLATE_TTL_SECONDS = 15.0

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Values loaded on first use and reloaded after `ttl` seconds; one load per key at a time.

    Concurrent misses for one key share a single load (a cold worker taking a backlog of 200
    requests reads the template once, not 200 times). A failed load is not cached.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, asyncio.Future[V]]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            future = entry[1]
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()
            if not future.done():
                return await asyncio.shield(future)
        future = asyncio.ensure_future(load())
        self._entries[key] = (self._clock() + self._ttl, future)
        try:
            return await asyncio.shield(future)
        except BaseException:
            current = self._entries.get(key)
            if future.done() and current is not None and current[1] is future:
                del self._entries[key]  # the load failed: the next request tries again
            raise


class PromptSources:
    """A worker's view of the prompt tables: current templates and category descriptions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = TEMPLATE_TTL_SECONDS) -> None:
        self._sessions = sessions
        self._templates: TTLCache[tuple[str, str], PromptTemplate] = TTLCache(ttl)
        self._descriptions: TTLCache[str, dict[str, str]] = TTLCache(ttl)

    async def template(self, category: str, language: str) -> PromptTemplate:
        async def load() -> PromptTemplate:
            async with self._sessions() as session:
                return await prompt_service.load_template(session, category, language)

        return await self._templates.get((category, language), load)

    async def descriptions(self) -> dict[str, str]:
        async def load() -> dict[str, str]:
            async with self._sessions() as session:
                return await prompt_service.category_descriptions(session)

        return await self._descriptions.get("en", load)


def _language(row: ClaimedRequest) -> str:
    requested = (row.options or {}).get("language") if isinstance(row.options, dict) else None
    if requested in LANGUAGES:
        return str(requested)
    return detect_language(row.query_text, row.title, row.description)


class TemplatePrompts:
    """The template machinery kinds with categories use (kinds.base.Prompts): classify a request
    that has no category, then render its category's current database template."""

    def __init__(self, settings: Settings, backend: LLMBackend, sources: PromptSources) -> None:
        self.settings = settings
        self._backend = backend
        self._sources = sources

    async def templated(
        self, kind: Kind, row: ClaimedRequest, context: dict[str, Any], category: str | None
    ) -> BuiltPrompt:
        settings, backend, sources = self.settings, self._backend, self._sources
        responses: list[ChatResponse] = []
        message: str | None = None
        resolved = cat.resolve_category(category) if category else None
        if resolved is None:

            async def ask(request: ChatRequest) -> str:
                try:
                    # The seed's GIGACHAT_CLASSIFY_MODEL: classification may run on a cheaper model.
                    response = await backend.chat(replace(request, model=settings.llm_classify_model))
                except LLMError as exc:
                    responses.extend(exc.billed)  # a moderated answer still cost its tokens
                    raise
                responses.append(response)
                return response.text

            inp = ClassifierInput(query_text=row.query_text or "", input_data=row.input_data)
            decided = await prompt_service.get_classifier(settings.classifier_llm_threshold).classify(
                inp, ask=ask, descriptions=await sources.descriptions()
            )
            resolved, message = decided.category, decided.message
            logger.debug(
                "request {} classified as {} ({:.2f}, {})",
                row.id,
                resolved,
                decided.confidence,
                decided.source,
            )

        language = _language(row)
        template = await sources.template(resolved, language)
        options = row.options if isinstance(row.options, dict) else {}
        rendered = build_prompt(
            template,
            PromptInput(
                category=resolved,
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
        chat = kind.chat_request(
            system=rendered.system,
            user=rendered.user,
            model=settings.answer_model(resolved),
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            timeout=settings.llm_timeout_seconds,
            context={**context, "category": resolved, "language": language},
        )
        return BuiltPrompt(chat, resolved, rendered.template_version, tuple(responses), message)
