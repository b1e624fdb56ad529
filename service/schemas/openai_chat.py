"""OpenAI chat-completion bodies and objects, mapped to and from request kind `chat`.

Shared by the batch lines with url /v1/chat/completions and any /v1/chat/completions route: a body
becomes a ChatInput (the same validation as POST /api/v1/requests), a completed row's result
becomes a `chat.completion` object.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from service.schemas.requests import ChatInput

# OpenAI's error `type` for our HTTP statuses (its SDKs read it); codes keep our own names.
_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                429: "rate_limit_error", 504: "timeout"}  # fmt: skip


def openai_error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": openai_error_type(status), "param": param, "code": code}}


# Parameters we accept and ignore (they change nothing a script relies on for a batch answer).
_IGNORED = {"top_p", "n", "stop", "presence_penalty", "frequency_penalty", "user", "seed", "logit_bias"}


def _content_text(content: Any) -> Any:
    """OpenAI allows content as a list of parts; text parts are joined, anything else is refused."""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ):
                raise ValueError("messages: only text content parts are supported")
            texts.append(part["text"])
        return "".join(texts)
    return content


def chat_input_from_openai(body: dict[str, Any]) -> ChatInput:
    """A /v1/chat/completions request body → ChatInput; raises ValueError or ValidationError."""
    if body.get("stream"):
        raise ValueError("stream: streaming is not available here")
    if body.get("n") not in (None, 1):
        raise ValueError("n: only one choice per request is supported")
    unknown = (
        set(body) - _IGNORED - {"model", "messages", "temperature", "max_tokens", "max_completion_tokens"}
    )
    unknown.discard("stream")
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: unsupported parameter")
    messages = body.get("messages")
    if isinstance(messages, list):
        messages = [
            {**message, "content": _content_text(message.get("content"))}
            if isinstance(message, dict)
            else message
            for message in messages
        ]
    return ChatInput.model_validate(
        {
            "kind": "chat",
            "messages": messages,
            "model": body.get("model"),
            "temperature": body.get("temperature"),
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        }
    )


def chat_completion_object(
    request_id: uuid.UUID, result: dict[str, Any], created: datetime
) -> dict[str, Any]:
    """A completed chat row's result as OpenAI's `chat.completion` object."""
    return {
        "id": f"chatcmpl-{request_id.hex}",
        "object": "chat.completion",
        "created": int(created.timestamp()),
        "model": result.get("model"),
        "choices": [
            {
                "index": 0,
                "message": result.get("message"),
                "finish_reason": result.get("finish_reason", "stop"),
                "logprobs": None,
            }
        ],
        "usage": result.get("usage"),
    }
