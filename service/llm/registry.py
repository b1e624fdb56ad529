"""Backends by name, and the one entry point the API and workers use: build_backend(settings).

Construction is cheap and does no I/O; clients, tokens and TLS material are set up in `start()`
(called from the app lifespan or worker start-up) and released in `close()`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis

from service.config import BackendName, Settings
from service.llm.base import LLMBackend
from service.llm.resilience import ResilientBackend

# Each backend's module is imported only when that backend is built: the GigaChat and OpenAI SDKs
# (with httpx, rich, click, pygments) add ~20 MB to a process that never calls them, and the
# dryrun backend should not depend on their imports either.


def _dryrun(settings: Settings) -> LLMBackend:
    from service.llm.dryrun import DryrunBackend

    return DryrunBackend(settings)


def _gigachat(mode: Literal["cloud", "mtls"]) -> Callable[[Settings], LLMBackend]:
    def build(settings: Settings) -> LLMBackend:
        from service.llm.gigachat import GigaChatBackend

        return GigaChatBackend(settings, mode)

    return build


def _openai(settings: Settings) -> LLMBackend:
    from service.llm.openai_compat import OpenAIBackend

    return OpenAIBackend(settings)


BACKENDS: dict[BackendName, Callable[[Settings], LLMBackend]] = {
    "dryrun": _dryrun,
    "gigachat-cloud": _gigachat("cloud"),
    "gigachat-mtls": _gigachat("mtls"),
    "openai": _openai,
}


def create_backend(name: BackendName, settings: Settings) -> LLMBackend:
    """The bare backend `name`, without retries or limits."""
    return BACKENDS[name](settings)


def build_backend(settings: Settings, redis: Redis | None = None) -> ResilientBackend:
    """LLM_BACKEND wrapped with retries, capacity limits and LLM_FALLBACK_BACKEND (if set). Not started.

    With `redis` (the process's one client, see service/redis_client.py) the concurrency cap and the
    rates hold across every process sharing it; without, per process."""
    primary = create_backend(settings.llm_backend, settings)
    fallback = (
        create_backend(settings.llm_fallback_backend, settings) if settings.llm_fallback_backend else None
    )
    return ResilientBackend.from_settings(settings, primary, fallback, redis)


@dataclass
class _HealthEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    checked_at: float = float("-inf")
    report: dict[str, Any] = field(default_factory=dict)


_health_cache: weakref.WeakKeyDictionary[Any, _HealthEntry] = weakref.WeakKeyDictionary()


async def backend_health(backend: LLMBackend, *, max_age_seconds: float) -> dict[str, Any]:
    """`backend.health()`, reused for `max_age_seconds` so frequent health probes do not hammer the
    provider; concurrent callers share one check. The report says how old it is."""
    entry = _health_cache.setdefault(backend, _HealthEntry())
    async with entry.lock:
        if time.monotonic() - entry.checked_at >= max_age_seconds:
            entry.report = await backend.health()
            entry.checked_at = time.monotonic()
    return {**entry.report, "checked_seconds_ago": round(time.monotonic() - entry.checked_at, 3)}
