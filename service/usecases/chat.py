"""The OpenAI-compatible front door's use-cases (editor plugins: ONLYOFFICE / R7 "custom provider").

- `GET /v1/models`: what the configured backends offer, from their own model lists, cached per
  process for MODELS_CACHE_SECONDS.
- `POST /v1/chat/completions`: an ordinary request of kind `chat` (owned, limited, accounted,
  visible in status and metrics) on the interactive lane. The call waits for its completion event
  on the status hub — never polling the database — up to CHAT_WAIT_SECONDS, then answers in
  OpenAI's shape; past the limit the route answers 202 with the request id and its status link.
  `stream: true` answers as OpenAI chunks: the backends answer in one piece through the queue, so
  the final answer comes as one content chunk, then the finish reason, then `data: [DONE]`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from service.callers.model import Limits
from service.db.models import RequestStatus
from service.errors import AppError, ValidationFailed
from service.kinds import kind_of
from service.kinds.chat import ChatInput, chat_input_from_openai
from service.runtime import Runtime
from service.usecases import requests as requests_service

# Parameters of the streaming protocol itself, not of the request stored.
_STREAM_PARAMETERS = ("stream", "stream_options")

# A failed chat request's error code → the HTTP status it answers with on /v1.
_FAILURE_STATUS = {
    "budget_exceeded": 429,
    "rate_limited": 429,
    "processing_timeout": 504,
    "llm_timeout": 504,
    "content_rejected": 400,
    "bad_request": 400,
}


class ChatFailed(AppError):
    """The request ended without an answer (the backend failed, it was cancelled or expired)."""

    status_code = 502
    code = "upstream_error"

    def __init__(self, message: str, *, code: str, status_code: int) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


def parse_chat_body(body: Any) -> tuple[ChatInput, bool]:
    """(the request, whether the caller asked to stream); 422 (OpenAI's shape on /v1) otherwise."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "body: a JSON object is expected", details=[{"loc": "body", "msg": "not an object"}]
        )
    stream = body.get("stream") is True
    fields = {name: value for name, value in body.items() if name not in _STREAM_PARAMETERS}
    try:
        return chat_input_from_openai(fields), stream
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(part) for part in first.get("loc", ())) or "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise ValidationFailed(f"{loc}: {message}", details=[{"loc": loc, "msg": message}]) from exc
    except ValueError as exc:
        loc = str(exc).split(":", 1)[0]
        raise ValidationFailed(str(exc), details=[{"loc": loc, "msg": str(exc)}]) from exc


@dataclass(frozen=True)
class ChatOutcome:
    request_id: uuid.UUID
    completion: dict[str, Any] | None  # None: still running when the wait limit passed


async def complete(
    rt: Runtime, payload: ChatInput, owner_id: str | None, limits: Limits | None = None
) -> ChatOutcome:
    submitted = await requests_service.submit(rt, payload, owner_id, limits=limits)
    wait = rt.settings.chat_wait_seconds
    status = await requests_service.wait_for_final(rt.store, rt.hub, submitted.id, owner_id, wait)
    if status.status not in RequestStatus.FINAL:
        return ChatOutcome(submitted.id, None)
    row = await requests_service.get_request(rt.store, submitted.id, owner_id)
    if row.status != RequestStatus.COMPLETED or not isinstance(row.result, dict):
        code = row.error_code or row.status
        raise ChatFailed(
            row.error_message or f"The request ended as {row.status}.",
            code=code,
            status_code=_FAILURE_STATUS.get(code, 502),
        )
    completion = kind_of(row.kind).chat_completion(row.id, row.result, row.created_at)
    if row.cached_from is not None:  # answered from the answer cache: say so, and who paid
        completion = {**completion, "cached": True, "cached_from": str(row.cached_from)}
    return ChatOutcome(submitted.id, completion)


async def completion_chunks(completion: dict[str, Any]) -> AsyncIterator[bytes]:
    """A finished completion as OpenAI's `chat.completion.chunk` server-sent events."""
    head = {key: completion[key] for key in ("id", "created", "model")}
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    deltas: list[dict[str, Any]] = [
        {"role": message.get("role", "assistant"), "content": ""},
        {"content": message.get("content") or ""},
        {},
    ]
    for number, delta in enumerate(deltas):
        last = number == len(deltas) - 1
        chunk: dict[str, Any] = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason") if last else None}
            ],
        }
        if last:
            chunk["usage"] = completion.get("usage")
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    yield b"data: [DONE]\n\n"
