"""GigaChat's two chat contracts, each sent and read through the SDK.

v2, `POST /api/v2/chat/completions` (the SDK's primary `achat.create`): messages of content parts,
`model_options`, usage as input/output tokens with `input_tokens_details.cached_tokens`.
v1, `POST /api/v1/chat/completions` (the SDK's root `achat(...)` call): plain-text messages,
`choices[]`, usage as prompt/completion tokens with `precached_prompt_tokens`. Older on-premises
(mTLS) installations serve only v1 and answer 404 on the v2 path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gigachat import GigaChatAsyncClient
from gigachat.models import Chat, ChatCompletionRequest, ChatMessage, ChatModelOptions, Messages

from service.llm.base import ChatRequest

ApiVersion = Literal["v1", "v2"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What either contract answered, in one shape. `text` is None when there is no assistant turn."""

    text: str | None
    model: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None


async def chat_v2(client: GigaChatAsyncClient, request: ChatRequest, model: str) -> Reply:
    payload = ChatCompletionRequest(
        model=request.model or model,
        messages=[
            ChatMessage(role=message.role, content=message.content) for message in request.conversation()
        ],
        model_options=ChatModelOptions(
            # GigaChat rejects temperature 0; leaving it out gives its most deterministic default.
            temperature=request.temperature or None,
            max_tokens=request.max_tokens,
        ),
    )
    completion = await client.achat.create(payload)
    reply = next((m for m in reversed(completion.messages) if m.role == "assistant"), None)
    finish_reason = completion.finish_reason or next(
        (m.finish_reason for m in reversed(completion.messages) if m.finish_reason), None
    )
    usage = completion.usage
    details = usage.input_tokens_details if usage else None
    return Reply(
        text=None if reply is None else "".join(part.text or "" for part in reply.content or []),
        model=completion.model or payload.model,
        finish_reason=finish_reason,
        prompt_tokens=usage.input_tokens if usage else None,
        completion_tokens=usage.output_tokens if usage else None,
        cached_tokens=details.cached_tokens if details else None,
    )


async def chat_v1(client: GigaChatAsyncClient, request: ChatRequest, model: str) -> Reply:
    payload = Chat(
        model=request.model or model,
        messages=[Messages(role=message.role, content=message.content) for message in request.conversation()],
        temperature=request.temperature or None,
        max_tokens=request.max_tokens,
    )
    completion = await client.achat(payload)
    choice = next((c for c in completion.choices if c.message.role == "assistant"), None)
    usage = completion.usage
    return Reply(
        text=None if choice is None else choice.message.content,
        model=completion.model or payload.model,
        finish_reason=choice.finish_reason if choice else None,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.precached_prompt_tokens,
    )


CONTRACTS: dict[ApiVersion, Callable[[GigaChatAsyncClient, ChatRequest, str], Awaitable[Reply]]] = {
    "v1": chat_v1,
    "v2": chat_v2,
}
