"""Turns a claimed request into a validated answer: prompt → LLM → parse → (one repair) → outcome.

The request's kind (service/kinds/) builds the prompt and reads the answer; this is the same loop
for every kind.

Pure of Kafka and of transactions: the worker's handler owns those. Database reads this step needs
(templates) go through a short-lived cache (`PromptSources`) that reads in short transactions of its
own, so no connection is held while the model thinks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import tracing
from service.callers.budgets import BUDGET_EXCEEDED, Budgets
from service.config import Settings
from service.db.requests_repo import ClaimedRequest, LLMAccounting
from service.kinds import kind_of
from service.kinds.base import BuiltPrompt
from service.kinds.history import with_history
from service.llm.base import ChatRequest, ChatResponse, LLMBackend, LLMError
from service.pipeline.answer import AnswerInvalid, build_repair_request
from service.usecases import conversations
from service.usecases.answer_cache import AnswerCache, bypassed, cache_key
from service.usecases.prompt_builder import PromptSources, TemplatePrompts


@dataclass(frozen=True, slots=True)
class Turn:
    """A completed request's question and answer, for its conversation."""

    conversation_id: uuid.UUID
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the handler stores: a result, or an error code and message; accounting either way."""

    accounting: LLMAccounting
    category: str | None = None
    result: Any = None
    template_version: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    turn: Turn | None = None  # a completed request of a conversation

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
        self._sessions = sessions
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
        with tracing.span("worker.prompt"):
            prepared = await kind.prompt(row, self._prompts)
        if self._settings.gigachat_session_cache:
            chat = replace(prepared.chat, session_id=prompt_session_id(row, prepared))
            prepared = replace(prepared, chat=chat)
        if conversations.conversation_of(row) is not None:
            # Its prompt carries the conversation's own history: no other request's answer fits it.
            return await self._answer(row, prepared)
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
        first = prepared.chat  # the first call carries the conversation's earlier turns; a repair not
        conversation_id = conversations.conversation_of(row)
        if conversation_id is not None:
            turns = await conversations.earlier_turns(self._sessions, conversation_id)
            first = with_history(first, turns, self._settings.conversation_token_budget)
        responses: list[ChatResponse] = list(prepared.responses)
        calls: list[dict[str, Any]] = []  # the transcript: each call's messages and raw answer
        try:
            calls.append(sent(first))
            response = await self._chat(first)
            responses.append(response)
            calls[-1]["answer"] = response.text
            try:
                with _validation_span():
                    result = kind.result(prepared, response)
            except AnswerInvalid as first_error:
                if not kind.repairs:
                    raise
                # One repair round: models usually fix a format slip when told exactly what is wrong.
                repair = build_repair_request(prepared.chat, response.text, first_error)
                calls.append(sent(repair))
                response = await self._chat(repair)
                responses.append(response)
                calls[-1]["answer"] = response.text
                with _validation_span():
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
        result = without_nul(result)
        turn = None
        if conversation_id is not None:
            answer = kind.answer_text(result) or orjson.dumps(result).decode()
            turn = Turn(conversation_id, without_nul(kind.turn_text(row)), answer)
        return Outcome(
            accounting=_account(responses, calls),
            category=prepared.category,
            result=result,
            template_version=prepared.template_version,
            turn=turn,
        )

    async def _chat(self, request: ChatRequest) -> ChatResponse:
        """One LLM call in a GenAI semantic-convention span: system, models, token counts; never
        the messages (user data) nor credentials."""
        with tracing.span("chat", kind=tracing.SpanKind.CLIENT) as current:
            if not current.is_recording():
                return await self._backend.chat(request)
            current.set_attribute("gen_ai.operation.name", "chat")
            current.set_attribute("gen_ai.system", self._backend.name)
            if request.model:
                current.set_attribute("gen_ai.request.model", request.model)
            try:
                response = await self._backend.chat(request)
            except LLMError as exc:
                current.set_attribute("error.type", exc.code)
                raise
            current.update_name(f"chat {response.model}")
            current.set_attribute("gen_ai.system", response.backend)
            if not request.model:
                current.set_attribute("gen_ai.request.model", response.model)
            current.set_attribute("gen_ai.response.model", response.model)
            current.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
            current.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
            return response


@contextmanager
def _validation_span() -> Iterator[None]:
    with tracing.span("worker.validate") as current:
        try:
            yield
        except AnswerInvalid as exc:
            current.set_status(
                tracing.Status(tracing.StatusCode.ERROR, exc.code)
            )  # the code only: the message quotes the answer
            raise


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
