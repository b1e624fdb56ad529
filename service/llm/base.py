"""The LLM backend protocol: one async chat completion, typed errors that say whether a retry helps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, as OpenAI-style APIs take it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    system: str
    user: str
    model: str | None = None  # None: the backend's configured model
    temperature: float = 0.2
    max_tokens: int = 2048
    timeout: float = 60.0
    # Structured view of the request (kind, category, input) for backends that answer from it
    # without a model, i.e. dryrun. Real backends ignore it.
    context: dict[str, Any] = field(default_factory=dict)
    # A caller's own conversation (request kind `chat`): sent as is instead of system + user.
    messages: tuple[ChatMessage, ...] = ()
    # The answer a backend without a model (dryrun) gives: set by the request's kind, which owns
    # it (service/kinds/). Real backends ignore it; it is not part of the request's identity.
    dryrun_answer: Callable[[ChatRequest], str] | None = field(default=None, compare=False, repr=False)
    # Sent as GigaChat's X-Session-ID: requests sharing it share the provider's cache of their common
    # prompt prefix (the template's system part). Not part of what the model is asked.
    session_id: str | None = field(default=None, compare=False)

    @classmethod
    def conversation_of(cls, messages: tuple[ChatMessage, ...], **options: Any) -> ChatRequest:
        return cls(system="", user="", messages=messages, **options)

    def conversation(self) -> tuple[ChatMessage, ...]:
        """What a backend sends: the caller's messages, or the template's system and user turns."""
        if self.messages:
            return self.messages
        return (ChatMessage("system", self.system), ChatMessage("user", self.user))

    @property
    def prompt_text(self) -> str:
        """All the text sent, for token estimates and deterministic hashing."""
        return "".join(message.content for message in self.conversation())


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False  # True when the server reported no usage and we counted ourselves
    # Prompt tokens the provider served from its cache (part of prompt_tokens; cheaper or free).
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResponse:
    text: str
    usage: Usage
    model: str
    latency_ms: float
    backend: str


class LLMError(Exception):
    """Base of backend errors. `retryable` says whether calling again can help."""

    retryable: bool = False
    code: str = "llm_error"

    def __init__(
        self, message: str, *, retry_after: float | None = None, response: ChatResponse | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        # The answer the provider produced and billed although it is refused (a moderated answer):
        # its usage must be counted like any other call's. Its text is never used.
        self.response = response

    @property
    def billed(self) -> tuple[ChatResponse, ...]:
        """The calls this error still cost tokens for (empty when the provider produced nothing)."""
        return () if self.response is None else (self.response,)


class RateLimited(LLMError):
    retryable = True
    code = "llm_rate_limited"


class Overloaded(LLMError):
    """5xx or an explicit overload answer."""

    retryable = True
    code = "llm_unavailable"


class LLMTimeout(LLMError):
    retryable = True
    code = "llm_timeout"


class LLMConnectionError(LLMError):
    retryable = True
    code = "llm_connection_error"


class AuthenticationFailed(LLMError):
    code = "llm_auth_failed"


class BadRequest(LLMError):
    code = "llm_bad_request"


class ContentRejected(LLMError):
    code = "llm_content_rejected"


@runtime_checkable
class LLMBackend(Protocol):
    name: str

    async def start(self) -> None:
        """Open clients (HTTP sessions, tokens). Fails fast on unusable configuration."""

    async def close(self) -> None:
        """Release clients."""

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion; raises LLMError subclasses."""

    async def health(self) -> dict[str, Any]:
        """Reachability without spending tokens: {"ok": bool, "detail": str, ...}. Never secrets."""

    async def models(self) -> list[str]:
        """The model ids the provider offers (its own list; raises LLMError when unreachable)."""


def estimate_tokens(text: str) -> int:
    """Rough token count for servers that report no usage: ~4 characters per token, at least 1."""
    return max(1, (len(text) + 3) // 4)


def estimate_prompt_tokens(request: ChatRequest) -> int:
    return sum(estimate_tokens(message.content) for message in request.conversation())
