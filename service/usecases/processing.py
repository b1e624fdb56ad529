"""Turns a claimed request into a validated answer: prompt → LLM → parse → (one repair) → outcome.

Pure of Kafka and of transactions: the worker's handler owns those. Database reads this step needs
(templates) go through a short-lived cache (`PromptSources`) that reads in short transactions of its
own, so no connection is held while the model thinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callers.budgets import BUDGET_EXCEEDED, Budgets
from service.config import Settings
from service.db.models import RequestKind
from service.db.requests_repo import ClaimedRequest, LLMAccounting
from service.llm.base import ChatMessage, ChatRequest, ChatResponse, LLMBackend, LLMError
from service.pipeline.answer import AnswerInvalid, build_repair_request, parse_answer
from service.usecases.prompt_builder import BuiltPrompt, PromptSources, build_chat


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


def request_context(row: ClaimedRequest) -> dict[str, Any]:
    """The structured input every backend may see (dryrun answers from it); build_chat adds the
    category it settles on and the language."""
    if row.kind == RequestKind.PROCESS_ANALYSIS:
        return {
            "kind": row.kind,
            "title": row.title,
            "description": row.description,
            **(row.options or {}),
        }
    return {
        "kind": row.kind,
        "query_text": row.query_text,
        "input_range": row.input_range,
        "input_data": row.input_data,
    }


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
        self._sources = PromptSources(sessions)
        self._budgets = budgets

    async def prepare(self, row: ClaimedRequest) -> BuiltPrompt:
        # Classification (when no category) and the database template: service/usecases/prompt_builder.py.
        return await build_chat(row, self._settings, self._backend, self._sources, request_context(row))

    async def process(self, row: ClaimedRequest) -> Outcome:
        # Before anything that may call the model (classification included): an owner who ran out
        # of budget while this request waited gets no LLM call for it.
        if self._budgets is not None:
            refusal = await self._budgets.refusal_for(row.owner_id)
            if refusal is not None:
                return Outcome(accounting=LLMAccounting(), error_code=BUDGET_EXCEEDED, error_message=refusal)
        if row.kind == RequestKind.CHAT:
            return await self._converse(row)
        prepared = await self.prepare(row)
        responses: list[ChatResponse] = list(prepared.responses)
        calls: list[dict[str, Any]] = []
        try:
            calls.append(sent(prepared.chat))
            response = await self._backend.chat(prepared.chat)
            responses.append(response)
            calls[-1]["answer"] = response.text
            try:
                result = parse_answer(prepared.category, response.text)
            except AnswerInvalid as first_error:
                # One repair round: models usually fix a format slip when told exactly what is wrong.
                repair = build_repair_request(prepared.chat, response.text, first_error)
                calls.append(sent(repair))
                response = await self._backend.chat(repair)
                responses.append(response)
                calls[-1]["answer"] = response.text
                result = parse_answer(prepared.category, response.text)
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

    async def _converse(self, row: ClaimedRequest) -> Outcome:
        """Kind `chat`: the caller's messages go to the backend as they are; the answer is free text,
        so there is nothing to parse or repair."""
        request = chat_request(row, self._settings)
        call = sent(request)
        try:
            response = await self._backend.chat(request)
        except LLMError as exc:
            message = without_nul(exc.message)
            accounting = LLMAccounting(transcript=without_nul({"calls": [call]}))
            return Outcome(accounting=accounting, error_code=exc.code, error_message=message)
        call["answer"] = response.text
        return Outcome(accounting=_account([response], [call]), result=without_nul(chat_result(response)))


def chat_request(row: ClaimedRequest, settings: Settings) -> ChatRequest:
    options = row.options if isinstance(row.options, dict) else {}
    messages = tuple(ChatMessage(m["role"], m["content"]) for m in row.input_data or [])
    return ChatRequest.conversation_of(
        messages,
        model=options.get("model"),
        temperature=options.get("temperature", settings.llm_temperature),
        max_tokens=options.get("max_tokens", settings.llm_max_tokens),
        timeout=settings.llm_timeout_seconds,
        context={"kind": RequestKind.CHAT},
    )


def chat_result(response: ChatResponse) -> dict[str, Any]:
    """The stored result of a chat request: the assistant message and what it cost."""
    return {
        "message": {"role": "assistant", "content": response.text},
        "finish_reason": "stop",
        "model": response.model,
        "usage": {
            "prompt_tokens": response.usage.prompt_tokens,
            "completion_tokens": response.usage.completion_tokens,
            "total_tokens": response.usage.total_tokens,
        },
    }


def sent(request: ChatRequest) -> dict[str, Any]:
    """One LLM call as the transcript keeps it: the messages exactly as sent; its answer once known."""
    messages = [{"role": m.role, "content": m.content} for m in request.conversation()]
    return {"messages": messages, "answer": None}


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
        transcript=transcript,
    )
