"""What a request kind is: every behaviour that differs between kinds, in one class per kind.

A kind owns its submit body (`Input`), how that body becomes a request row, the prompt or messages
the worker sends, how the model's answer becomes the stored result, the answer the dryrun backend
gives without a model, how a result reads on each surface, and its OpenAPI examples. The rest of
the code looks a kind up by name (service/kinds/__init__.py) and never branches on it.

Kinds sit above schemas, pipeline, llm and db, and below usecases and api: what a kind needs from
the worker (templates, classification) comes in through `Prompts`, implemented in usecases.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from service.config import Settings
from service.db.records import RequestRecord
from service.db.requests_repo import ClaimedRequest
from service.llm.base import ChatRequest, ChatResponse
from service.pipeline.answer import SCHEMA_KIND
from service.pipeline.categories import resolve_category

if TYPE_CHECKING:
    from service.schemas.webhooks import WebhookSpec

Problem = dict[str, str]


class KindInput(BaseModel):
    """The base of every kind's submit body. Each kind declares its own fields (its `kind` literal
    first, `idempotency_key` and `webhook` too); the annotations below only tell the type checker
    that every body has them, without changing any body's field order."""

    if TYPE_CHECKING:
        kind: str
        idempotency_key: str | None
        webhook: WebhookSpec | None
        cache: bool


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    """What the worker sends for a claimed request, and what it records about how it was built."""

    chat: ChatRequest
    category: str | None  # None: a kind without categories (chat, text)
    template_version: int | None = None
    # Model calls made while preparing (classification), for the request's accounting.
    responses: tuple[ChatResponse, ...] = ()
    classification_message: str | None = None


class Prompts(Protocol):
    """The worker's prompt machinery a kind may use (service/usecases/prompt_builder.py)."""

    settings: Settings

    async def templated(
        self, kind: Kind, row: ClaimedRequest, context: dict[str, Any], category: str | None
    ) -> BuiltPrompt:
        """The category's database template rendered for the row (`category` None: classify it
        first), as `kind.chat_request(...)`; `context` is what the dryrun backend answers from."""


def too_long(loc: str, text: str | None, limit: int) -> list[Problem]:
    """A configurable length limit on one text field (structure and storable text are the schema's)."""
    if text is not None and len(text) > limit:
        return [{"loc": loc, "msg": f"at most {limit} characters, got {len(text)}"}]
    return []


class Kind(ABC):
    name: ClassVar[str]
    Input: ClassVar[type[KindInput]]
    # OpenAPI examples of the submit body: {"example name": {"summary": ..., "value": ...}}.
    examples: ClassVar[dict[str, dict[str, Any]]]
    # Whether an invalid answer gets one repair round (structured answers; free text has none).
    repairs: ClassVar[bool] = False

    # --- submit ------------------------------------------------------------------------------

    def limit_problems(self, body: Any, settings: Settings) -> list[Problem]:
        """The configurable size limits of this kind's body (the schema checked the structure)."""
        return []

    def category(self, body: Any) -> str | None:
        """The category stored at submit (None: none, or the worker classifies)."""
        return None

    @abstractmethod
    def to_row(self, body: Any, category: str | None) -> dict[str, Any]:
        """The request row's input columns for this body (`kind` is added by the caller)."""

    # --- worker ------------------------------------------------------------------------------

    @abstractmethod
    async def prompt(self, row: ClaimedRequest, prompts: Prompts) -> BuiltPrompt:
        """The prompt or messages for a claimed row."""

    def turn_text(self, row: ClaimedRequest) -> str:
        """The user's words of this request, as its conversation keeps them (not the range data)."""
        return row.query_text or ""

    @abstractmethod
    def result(self, built: BuiltPrompt, response: ChatResponse) -> Any:
        """The stored result of the model's answer; raises pipeline.answer.AnswerInvalid."""

    @abstractmethod
    def dryrun(self, request: ChatRequest) -> str:
        """The dryrun backend's answer text: derived from the request's own input only."""

    def chat_request(self, **fields: Any) -> ChatRequest:
        """A ChatRequest that the dryrun backend answers with this kind's `dryrun`."""
        return ChatRequest(**fields, dryrun_answer=self.dryrun)

    # --- surfaces ----------------------------------------------------------------------------

    def answer_text(self, result: Any) -> str | None:
        """The answer as one text, where it has one (the seed's `text`, an OpenAI message)."""
        text = result.get("text") if isinstance(result, dict) else None
        return text if isinstance(text, str) else None

    def seed_result(self, row: RequestRecord) -> dict[str, Any]:
        """The kind's fields of the seed contract's /api/ai/result answer."""
        answer = row.result if isinstance(row.result, dict) else {}
        return {
            # What the answer is: table, chart, histogram, text or process_analysis.
            "answer_type": SCHEMA_KIND.get(resolve_category(row.category or "") or ""),
            # The plugin writes this 2-D array back into the sheet (for charts: the inline series).
            "result": seed_values(answer),
            "text": answer.get("text"),
            "output_range": answer.get("output_range"),
            # The whole structured answer: chart and histogram specifications, formatting rules.
            "answer": answer,
        }

    def chat_completion(self, request_id: uuid.UUID, result: Any, created: datetime) -> dict[str, Any]:
        """A completed result as OpenAI's `chat.completion` object (/v1 and OpenAI batch lines)."""
        usage = result.get("usage") if isinstance(result, dict) else None
        return completion_object(
            request_id,
            created,
            model=result.get("model") if isinstance(result, dict) else None,
            message={"role": "assistant", "content": self.answer_text(result) or ""},
            finish_reason="stop",
            usage=usage,
        )

    def report(self, row: RequestRecord, language: str | None) -> str | None:
        """A Markdown report of a completed row, for kinds that have one (None: no report)."""
        return None

    def report_pdf(self, row: RequestRecord, language: str | None) -> bytes | None:
        """The same report as a PDF (None: no report). CPU work: callers run it off the event loop."""
        return None


def seed_values(answer: dict[str, Any]) -> list[list[Any]]:
    """The answer as a 2-D array where it has one: a table's values, or a chart's inline series
    (a header of series names, then one row per point)."""
    values = answer.get("values")
    if isinstance(values, list) and values:
        return values
    series = answer.get("series")
    if (
        isinstance(series, list)
        and series
        and all(isinstance(s, dict) and isinstance(s.get("values"), list) for s in series)
    ):
        names = [s.get("name") or f"Series {number}" for number, s in enumerate(series, start=1)]
        length = max(len(s["values"]) for s in series)
        points = [[s["values"][i] if i < len(s["values"]) else None for s in series] for i in range(length)]
        return [names, *points]
    return []


def completion_object(
    request_id: uuid.UUID,
    created: datetime,
    *,
    model: Any,
    message: Any,
    finish_reason: Any,
    usage: Any,
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id.hex}",
        "object": "chat.completion",
        "created": int(created.timestamp()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
    }
