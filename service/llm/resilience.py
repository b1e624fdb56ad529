"""Retries, rate limits and fallback around any backend; itself an LLMBackend, so callers see one object.

- Retryable errors (429, 5xx, timeouts, connection errors) are retried with exponential backoff and
  full jitter; a server's Retry-After is honoured, every wait capped by LLM_RETRY_MAX_SECONDS.
- At most `max_attempts` calls per backend per request; then the last error is raised as is.
- Each backend has its own capacity: a cap on calls in flight and request/token rates, shared by all
  workers through Redis when REDIS_URL is set, per process otherwise (service/llm/capacity.py).
  Retries pass through it too, because the provider counts them.
- With a fallback configured, a primary that fails retryably after its attempts is marked down for
  `fallback_cooldown` seconds: that request and the following ones go to the fallback meanwhile.
  Non-retryable errors (auth, bad request, content policy) are final and never fall back: another
  backend would not make a malformed prompt valid, and auth problems must be seen, not hidden.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from service.config import Settings
from service.llm.base import ChatRequest, ChatResponse, LLMBackend, LLMError, estimate_prompt_tokens
from service.llm.capacity import Capacity, capacity_from_settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int, error: LLMError) -> float:
        """Full jitter (uniform in [0, base * 2^(attempt-1)]), at least Retry-After, at most max."""
        backoff = random.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))
        if error.retry_after is not None:
            backoff = max(backoff, error.retry_after)
        return min(backoff, self.max_seconds)


class ResilientBackend:
    def __init__(
        self,
        primary: LLMBackend,
        *,
        policy: RetryPolicy,
        fallback: LLMBackend | None = None,
        limiters: dict[str, Capacity | None] | None = None,
        fallback_cooldown: float = 30.0,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.policy = policy
        self._limiters = limiters or {}
        self._cooldown = fallback_cooldown
        self._primary_down_until = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        primary: LLMBackend,
        fallback: LLMBackend | None = None,
        redis: Redis | None = None,
    ) -> ResilientBackend:
        backends = [primary] if fallback is None else [primary, fallback]
        return cls(
            primary,
            fallback=fallback,
            policy=RetryPolicy(
                max_attempts=settings.llm_max_attempts,
                base_seconds=settings.llm_retry_base_seconds,
                max_seconds=settings.llm_retry_max_seconds,
            ),
            limiters={
                backend.name: capacity_from_settings(settings, backend.name, redis) for backend in backends
            },
            fallback_cooldown=settings.llm_fallback_cooldown_seconds,
        )

    async def start(self) -> None:
        await self.primary.start()
        if self.fallback is not None:
            try:
                await self.fallback.start()
            except BaseException:
                await self.primary.close()
                raise

    async def close(self) -> None:
        for backend in (self.primary, self.fallback):
            if backend is None:
                continue
            try:
                await backend.close()
            except Exception as exc:  # closing must release every backend even if one fails
                logger.warning("closing LLM backend {} failed: {}", backend.name, type(exc).__name__)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        # A model chosen per call (LLM_CLASSIFY_MODEL, ...) names one of the primary's models; the
        # fallback answers with its own configured model.
        if self.fallback is not None and time.monotonic() < self._primary_down_until:
            return await self._with_retries(self.fallback, replace(request, model=None))
        try:
            return await self._with_retries(self.primary, request)
        except LLMError as error:
            if self.fallback is None or not error.retryable:
                raise
            self._primary_down_until = time.monotonic() + self._cooldown
            logger.warning(
                "LLM backend {} failed ({}); using fallback {} for {}s",
                self.primary.name,
                error.code,
                self.fallback.name,
                self._cooldown,
            )
            return await self._with_retries(self.fallback, replace(request, model=None))

    async def _with_retries(self, backend: LLMBackend, request: ChatRequest) -> ChatResponse:
        attempt = 1
        while True:
            try:
                return await self._call(backend, request)
            except LLMError as error:
                if not error.retryable or attempt >= self.policy.max_attempts:
                    raise
                delay = self.policy.delay(attempt, error)
                logger.info(
                    "LLM backend {} attempt {}/{} failed ({}); retrying in {:.2f}s",
                    backend.name,
                    attempt,
                    self.policy.max_attempts,
                    error.code,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1

    async def _call(self, backend: LLMBackend, request: ChatRequest) -> ChatResponse:
        limiter = self._limiters.get(backend.name)
        if limiter is None:
            return await backend.chat(request)
        async with limiter.reserve(estimate_prompt_tokens(request)) as slot:
            try:
                response = await backend.chat(request)
            except LLMError as error:
                for billed in error.billed:  # a refused answer still used the provider's budget
                    slot.record_usage(billed.usage.total_tokens)
                raise
            slot.record_usage(response.usage.total_tokens)
            return response

    async def models(self) -> list[str]:
        """What the primary offers, then what only the fallback adds (an unreachable one adds none)."""
        found: list[str] = []
        errors: list[LLMError] = []
        for backend in (self.primary, self.fallback):
            if backend is None:
                continue
            try:
                found.extend(name for name in await backend.models() if name not in found)
            except LLMError as error:
                errors.append(error)
        if errors and not found:
            raise errors[0]
        return found

    def state(self) -> dict[str, Any]:
        """Retry policy and fallback circuit as this process sees them (the operator console)."""
        down_for = self._primary_down_until - time.monotonic()
        return {
            "primary": self.primary.name,
            "fallback": self.fallback.name if self.fallback is not None else None,
            "max_attempts": self.policy.max_attempts,
            "retry_base_seconds": self.policy.base_seconds,
            "retry_max_seconds": self.policy.max_seconds,
            # Open: the primary failed and calls go to the fallback until the cooldown ends.
            "circuit": "open" if self.fallback is not None and down_for > 0 else "closed",
            "circuit_open_for_seconds": round(max(0.0, down_for), 1),
        }

    async def health(self) -> dict[str, Any]:
        """Primary (and fallback) reachability; ok when whichever would serve the next call is up."""
        primary = await self.primary.health()
        report: dict[str, Any] = {"ok": primary.get("ok", False), "backend": self.name, "primary": primary}
        if self.fallback is not None:
            fallback = await self.fallback.health()
            report["fallback"] = fallback
            report["ok"] = report["ok"] or fallback.get("ok", False)
        return report
