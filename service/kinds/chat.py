"""Kind `chat`: a caller's own conversation, sent to the backend as it is (no template).

What the OpenAI-compatible surface (/v1/chat/completions) and OpenAI batch lines submit: the
messages are the input, the answer is free text (nothing to parse or repair), and the stored result
is the assistant message with what it cost, rendered as a `chat.completion` object on /v1.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.config import Settings
from service.db.requests_repo import ClaimedRequest
from service.kinds.base import BuiltPrompt, Kind, KindInput, Problem, Prompts, completion_object
from service.kinds.history import ConversationId, conversation_field
from service.llm.base import ChatMessage, ChatRequest, ChatResponse
from service.schemas.fields import SafeText, Text
from service.schemas.requests import IdempotencyKey
from service.schemas.webhooks import WebhookSpec

MAX_CHAT_MESSAGES = 500


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: SafeText


class ChatInput(KindInput):
    """A caller's own conversation, sent to the configured backend without a template."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["chat"]
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    model: Annotated[str, Text(max_length=128)] | None = Field(
        None, description="Omitted: the backend's configured model."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    conversation_id: ConversationId | None = conversation_field()
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")
    cache: bool = Field(True, description="false: never answered from the answer cache.")

    @model_validator(mode="after")
    def _has_user_turn(self) -> ChatInput:
        if not any(message.role == "user" and message.content.strip() for message in self.messages):
            raise ValueError("messages must hold at least one non-empty user message")
        return self


# OpenAI parameters we accept and ignore (they change nothing a script relies on for an answer).
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
    known = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "cache"}
    unknown = set(body) - _IGNORED - known
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
            "cache": body.get("cache", True),
        }
    )


def dryrun_reply(messages: tuple[ChatMessage, ...]) -> str:
    """A plain-text reply derived from the conversation's last user turn only: stable for equal
    input and never anything but that input's shape."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    words = last_user.split()
    preview = " ".join(words[:12])
    return (
        f"Dry-run reply to a {len(messages)}-message conversation; "
        f"last user message ({len(words)} words): {preview}"
    )


class Chat(Kind):
    name = "chat"
    Input = ChatInput
    examples = {  # noqa: RUF012 (read only)
        "chat": {
            "summary": "A conversation sent to the backend as is (no template)",
            "value": {
                "kind": "chat",
                "messages": [
                    {"role": "system", "content": "You answer briefly."},
                    {"role": "user", "content": "How do I freeze the first row of a sheet?"},
                ],
                "max_tokens": 200,
            },
        }
    }

    def limit_problems(self, body: ChatInput, settings: Settings) -> list[Problem]:
        problems: list[Problem] = []
        chat_chars = sum(len(message.content) for message in body.messages)
        if chat_chars > settings.max_input_chars:
            msg = f"at most {settings.max_input_chars} characters in all, got {chat_chars}"
            problems.append({"loc": "messages", "msg": msg})
        if body.max_tokens is not None and body.max_tokens > settings.llm_max_tokens:
            problems.append(
                {"loc": "max_tokens", "msg": f"at most {settings.llm_max_tokens} on this service"}
            )
        return problems

    def to_row(self, body: ChatInput, category: str | None) -> dict[str, Any]:
        # The conversation is the input (input_data); model and sampling options travel in options.
        options = {
            k: v
            for k, v in (
                ("model", body.model),
                ("temperature", body.temperature),
                ("max_tokens", body.max_tokens),
            )
            if v is not None
        }
        return {
            "category": None,
            "input_data": [message.model_dump() for message in body.messages],
            "options": options or None,
        }

    async def prompt(self, row: ClaimedRequest, prompts: Prompts) -> BuiltPrompt:
        settings = prompts.settings
        options = row.options if isinstance(row.options, dict) else {}
        chat = self.chat_request(
            system="",
            user="",
            messages=tuple(ChatMessage(m["role"], m["content"]) for m in row.input_data or []),
            model=options.get("model"),
            temperature=options.get("temperature", settings.llm_temperature),
            max_tokens=options.get("max_tokens", settings.llm_max_tokens),
            timeout=settings.llm_timeout_seconds,
            context={"kind": self.name},
        )
        return BuiltPrompt(chat, category=None)

    def turn_text(self, row: ClaimedRequest) -> str:
        users = [m["content"] for m in row.input_data or [] if m.get("role") == "user"]
        return users[-1] if users else ""

    def result(self, built: BuiltPrompt, response: ChatResponse) -> Any:
        """The assistant message and what it cost."""
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

    def dryrun(self, request: ChatRequest) -> str:
        return dryrun_reply(request.messages)

    def answer_text(self, result: Any) -> str | None:
        message = result.get("message") if isinstance(result, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else None

    def chat_completion(self, request_id: uuid.UUID, result: Any, created: datetime) -> dict[str, Any]:
        return completion_object(
            request_id,
            created,
            model=result.get("model"),
            message=result.get("message"),
            finish_reason=result.get("finish_reason", "stop"),
            usage=result.get("usage"),
        )
