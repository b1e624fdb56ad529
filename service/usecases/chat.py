"""The OpenAI-compatible front door's use-cases (editor plugins: ONLYOFFICE / R7 "custom provider").

- `GET /v1/models`: what the configured backends offer, from their own model lists, cached per
  process for MODELS_CACHE_SECONDS.
- `POST /v1/chat/completions`: an ordinary request of kind `chat` (owned, limited, accounted,
  visible in status and metrics) on the interactive lane. The call waits for its completion event
  on the status hub — never polling the database — up to CHAT_WAIT_SECONDS, then answers in
  OpenAI's shape. Past the limit it answers what OpenAI's protocol allows, an error (504, `timeout`)
  naming the request, which goes on: its result stays readable on /api/v1. Never a 202: no OpenAI
  client understands one (ONLYOFFICE's plugin shows an empty answer).
  `stream: true` answers as OpenAI chunks. While the request is queued or processing, SSE comments
  (`: keep-alive`) every SSE_KEEPALIVE_SECONDS keep proxies from closing the connection; the
  backends answer in one piece through the queue, so the final answer comes as one content chunk,
  then the finish reason, then `data: [DONE]`. An error after the stream began (the request failed,
  the wait limit passed) is an OpenAI error event, `data: {"error": {...}}`, which the SDKs raise.
"""

from __future__ import annotations

import time
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
from service.schemas.openai_errors import openai_error
from service.usecases import requests as requests_service

KEEPALIVE = b": keep-alive\n\n"

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


class ChatTimedOut(AppError):
    """No answer within CHAT_WAIT_SECONDS. The request itself goes on."""

    status_code = 504
    code = "timeout"

    def __init__(self, request_id: uuid.UUID, waited: float) -> None:
        link = f"/api/v1/requests/{request_id}"
        super().__init__(
            f"Request {request_id} has no answer after {waited:g} s (CHAT_WAIT_SECONDS). It goes on: "
            f"its status is at {link} and its answer will be at {link}/result.",
            # OpenAI's SDKs retry a 5xx (twice by default), which would submit the question again
            # behind the one still running; this header of theirs says not to.
            headers={"x-should-retry": "false", "Location": link},
        )


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
    completion: dict[str, Any] | None  # None: still running when the first wait ended


async def complete(
    rt: Runtime, payload: ChatInput, owner_id: str | None, *, wait: float, limits: Limits | None = None
) -> ChatOutcome:
    """Submit, and wait up to `wait` seconds for the answer; ChatFailed when the request failed.
    `limits`: the caller's (the models its key may name)."""
    submitted = await requests_service.submit(rt, payload, owner_id, limits=limits)
    status = await requests_service.wait_for_final(rt.store, rt.hub, submitted.id, owner_id, wait)
    if status.status not in RequestStatus.FINAL:
        return ChatOutcome(submitted.id, None)
    return ChatOutcome(submitted.id, await _completion(rt, submitted.id, owner_id))


async def _completion(rt: Runtime, request_id: uuid.UUID, owner_id: str | None) -> dict[str, Any]:
    """A final request's answer as a `chat.completion`; ChatFailed when it ended without one."""
    row = await requests_service.get_request(rt.store, request_id, owner_id)
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
    return completion


async def pending_chunks(
    rt: Runtime, request_id: uuid.UUID, owner_id: str | None, max_seconds: float
) -> AsyncIterator[bytes]:
    """The stream of a request still running: keep-alive comments until it is final (woken by its
    completion event; the row is read at the start, on the event and at the deadline), then its
    chunks and [DONE], or an error event when it failed or `max_seconds` passed."""
    keepalive = rt.settings.sse_keepalive_seconds
    deadline = time.monotonic() + max_seconds
    yield KEEPALIVE  # at once: the client and any proxy see the stream is alive
    with rt.hub.watch(request_id) as watch:
        row = await requests_service.get_status(rt.store, request_id, owner_id)
        while row.status not in RequestStatus.FINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield _error_event(ChatTimedOut(request_id, rt.settings.chat_wait_seconds))
                return
            event = await watch.final(min(keepalive, remaining))
            if event is not None or time.monotonic() >= deadline:
                row = await requests_service.get_status(rt.store, request_id, owner_id)
            else:
                yield KEEPALIVE
    try:
        completion = await _completion(rt, request_id, owner_id)
    except ChatFailed as failed:
        yield _error_event(failed)
        return
    async for chunk in completion_chunks(completion):
        yield chunk


def _error_event(error: AppError) -> bytes:
    return b"data: " + orjson.dumps(openai_error(error.status_code, error.code, error.message)) + b"\n\n"


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
