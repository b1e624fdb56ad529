"""The backends' model ids (GET /v1/models), cached per process."""

from __future__ import annotations

import asyncio
import time

from service.llm.base import LLMBackend, LLMError


class ModelList:
    """The backends' model ids, fetched at most once per `max_age_seconds`; concurrent callers share
    one fetch; while the backends are unreachable, the last list known is served."""

    def __init__(self, backend: LLMBackend, max_age_seconds: float) -> None:
        self._backend = backend
        self._max_age = max_age_seconds
        self._names: list[str] = []
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def names(self) -> list[str]:
        async with self._lock:
            if time.monotonic() - self._fetched_at >= self._max_age:
                try:
                    self._names = await self._backend.models()
                    self._fetched_at = time.monotonic()
                except LLMError:
                    if not self._names:
                        raise
        return self._names
