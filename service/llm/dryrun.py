"""The dryrun backend: a real backend that answers without a model.

Answers are deterministic and derived only from the request's own input: the request carries its
answer (ChatRequest.dryrun_answer), given by its kind (service/kinds/) or by the classifier
(service/pipeline/classify.py). It never echoes settings, environment variables or prompt
internals.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from service.config import Settings
from service.llm.base import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    Overloaded,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)


class DryrunBackend:
    name = "dryrun"

    def __init__(self, settings: Settings) -> None:
        self._latency = settings.dryrun_latency_ms / 1000
        self._failure_rate = settings.dryrun_failure_rate

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "backend": self.name, "detail": "no external service"}

    async def models(self) -> list[str]:
        return ["dryrun"]

    def _fails(self, request: ChatRequest) -> bool:
        # Deterministic per input, so a test can reason about which requests fail.
        if self._failure_rate <= 0:
            return False
        digest = hashlib.sha256(request.prompt_text.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self._failure_rate

    @staticmethod
    def answer_text(request: ChatRequest) -> str:
        """The answer the request carries (its kind's, service/kinds/, or the classifier's), else
        a generic reply to its last user turn."""
        if request.dryrun_answer is not None:
            return request.dryrun_answer(request)
        return generic_reply(request.conversation())

    async def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._fails(request):
            raise Overloaded("dryrun backend: simulated failure")
        text = self.answer_text(request)
        prompt_tokens = estimate_prompt_tokens(request)
        completion_tokens = estimate_tokens(text)
        return ChatResponse(
            text=text,
            usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, estimated=True),
            model="dryrun",
            latency_ms=(time.perf_counter() - started) * 1000,
            backend=self.name,
        )


def generic_reply(messages: tuple[ChatMessage, ...]) -> str:
    """A plain-text reply to a request that carries no answer of its own (e.g. an operator's
    template preview), derived from its last user turn only: stable for equal input and never
    anything but its shape."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    words = last_user.split()
    return f"Dry-run reply; last user message ({len(words)} words): {' '.join(words[:12])}"
