"""Turns a claimed request into a validated answer: prompt → LLM → parse → (one repair) → outcome.

The request's kind (service/kinds/) builds the prompt and reads the answer; this is the same loop
for every kind.

Pure of Kafka and of transactions: the worker's handler owns those. Database reads this step needs
(templates) go through a short-lived cache (`PromptSources`) that reads in short transactions of its
own, so no connection is held while the model thinks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callers.budgets import BUDGET_EXCEEDED, Budgets
from service.config import Settings
from service.db.requests_repo import ClaimedRequest, LLMAccounting
from service.kinds import kind_of
from service.kinds.base import BuiltPrompt
from service.llm.base import ChatRequest, ChatResponse, LLMBackend, LLMError
from service.pipeline.answer import AnswerInvalid, build_repair_request
from service.usecases.answer_cache import AnswerCache, bypassed, cache_key
from service.usecases.prompt_builder import PromptSources, TemplatePrompts


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the handler stores: a result, or an error code and message; accounting either way."""

    accounting: LLMAccounting
    category: str | None = None
    result: Any = None
    template_version: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


class Processor:
    def __init__(
        self,
        settings: Settings,
        backend: LLMBackend,
        sessions: async_sessionmaker[AsyncSession],
        budgets: Budgets | None = None,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._prompts = TemplatePrompts(settings, backend, PromptSources(sessions))
        self._budgets = budgets
        # The dryrun backend costs nothing and answers from the input alone: nothing to save.
        cached = settings.answer_cache and backend.name != "dryrun"
        self._cache = AnswerCache(settings, sessions) if cached else None

    async def process(self, row: ClaimedRequest) -> Outcome:
        # Before anything that may call the model (classification included): an owner who ran out
        # of budget while this request waited gets no LLM call for it.
        if self._budgets is not None:
            refusal = await self._budgets.refusal_for(row.owner_id)
            if refusal is not None:
                return Outcome(accounting=LLMAccounting(), error_code=BUDGET_EXCEEDED, error_message=refusal)
        kind = kind_of(row.kind)
        prepared = await kind.prompt(row, self._prompts)
        if self._settings.gigachat_session_cache:
            chat = replace(prepared.chat, session_id=prompt_session_id(row, prepared))
            prepared = replace(prepared, chat=chat)
        if self._cache is None or bypassed(row):
            return await self._answer(row, prepared)
        # Between the rendered messages and the LLM call: the same call made before (or being made
        # now, by any worker) answers this request too.
        key = cache_key(self._settings, self._backend.name, row, prepared.chat)
        cached = await self._cache.lead_or_answer(key, row.id)
        if cached is not None:
            classification = _account(list(prepared.responses), [])
            return Outcome(
                accounting=replace(
                    classification,
                    backend=cached.backend,
                    model=cached.model,
                    cached_from=cached.leader_id,
                    tokens_saved=cached.total_tokens,
                ),
                category=cached.category or prepared.category,
                result=cached.result,
                template_version=cached.template_version,
            )
        try:
            outcome = await self._answer(row, prepared)
        except BaseException:
            await self._cache.give_up(key, row.id)
            raise
        if outcome.ok:
            await self._cache.store(
                key, row.id, outcome.result, outcome.accounting, outcome.category, outcome.template_version
            )
        else:
            await self._cache.give_up(key, row.id)  # a follower tries for itself
        return outcome

    async def _answer(self, row: ClaimedRequest, prepared: BuiltPrompt) -> Outcome:
        kind = kind_of(row.kind)
        responses: list[ChatResponse] = list(prepared.responses)
        calls: list[dict[str, Any]] = []  # the transcript: each call's messages and raw answer
        try:
            calls.append(sent(prepared.chat))
            response = await self._backend.chat(prepared.chat)
            responses.append(response)
            calls[-1]["answer"] = response.text
            try:
                result = kind.result(prepared, response)
            except AnswerInvalid as first_error:
                if not kind.repairs:
                    raise
                # One repair round: models usually fix a format slip when told exactly what is wrong.
                repair = build_repair_request(prepared.chat, response.text, first_error)
                calls.append(sent(repair))
                response = await self._backend.chat(repair)
                responses.append(response)
                calls[-1]["answer"] = response.text
                result = kind.result(prepared, response)
        except AnswerInvalid as exc:
            return Outcome(
                accounting=_account(responses, calls),
                category=prepared.category,
                error_code=exc.code,
                error_message=without_nul(f"The model's answer was invalid: {exc.message}"),
            )
        except LLMError as exc:
            responses.extend(exc.billed)  # a moderated answer still cost its tokens
            return Outcome(
                accounting=_account(responses, calls),
                category=prepared.category,
                error_code=exc.code,
                error_message=without_nul(exc.message),
            )
        return Outcome(
            accounting=_account(responses, calls),
            category=prepared.category,
            result=without_nul(result),
            template_version=prepared.template_version,
        )


def sent(request: ChatRequest) -> dict[str, Any]:
    """One LLM call as the transcript keeps it: the messages exactly as sent; its answer once known."""
    messages = [{"role": m.role, "content": m.content} for m in request.conversation()]
    return {"messages": messages, "answer": None}


def prompt_session_id(row: ClaimedRequest, prepared: BuiltPrompt) -> str:
    """One provider session per (owner, kind, category, template version): their requests share
    the rendered system prompt and examples, which GigaChat then bills as cached prompt tokens. A
    hash, so the header names no owner; a new template version starts a new session."""
    identity = f"{row.owner_id or '-'}|{row.kind}|{prepared.category or '-'}|{prepared.template_version}"
    return str(uuid.uuid5(_SESSION_NAMESPACE, identity))


_SESSION_NAMESPACE = uuid.UUID("6f0c8d1e-3b7a-4c55-9a0e-2d4b1c7e9f10")


def without_nul(value: Any) -> Any:
    """A model may emit U+0000, which PostgreSQL text and JSONB cannot store: drop it everywhere."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def _account(responses: list[ChatResponse], calls: list[dict[str, Any]]) -> LLMAccounting:
    # What was sent and answered, for the operator console (requests.transcript).
    transcript = without_nul({"calls": calls}) if calls else None
    if not responses:
        return LLMAccounting(transcript=transcript)
    last = responses[-1]
    return LLMAccounting(
        prompt_tokens=sum(r.usage.prompt_tokens for r in responses),
        completion_tokens=sum(r.usage.completion_tokens for r in responses),
        total_tokens=sum(r.usage.total_tokens for r in responses),
        estimated=any(r.usage.estimated for r in responses),
        calls=len(responses),
        latency_ms=sum(r.latency_ms for r in responses),
        backend=last.backend,
        model=last.model,
        cached_tokens=sum(r.usage.cached_tokens for r in responses),
        transcript=transcript,
    )
