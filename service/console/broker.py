"""The overview's figures from the broker: the worker group's lag per lane and the DLQ depth."""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from service.config import Settings
from service.messaging.lag import group_figures


class BrokerFigures:
    """The worker group's lag per lane and the DLQ depth. Looked up in the background at most once per
    CONSOLE_BROKER_CACHE_SECONDS per process, however many operators watch: a page gets the latest
    figures at once (only the very first look-up is waited for), never a broker round trip."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._at = float("-inf")
        self._figures: dict[str, int] | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def get(self) -> dict[str, int] | None:
        stale = time.monotonic() - self._at >= self._settings.console_broker_cache_seconds
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._look_up())
        if self._at == float("-inf") and self._refresh is not None:
            await asyncio.shield(self._refresh)
        return self._figures

    async def _look_up(self) -> None:
        s = self._settings
        lanes = [s.kafka_topic_requests, s.kafka_topic_requests_batch]
        try:
            self._figures = await asyncio.wait_for(group_figures(s, lanes, s.kafka_topic_dead_letter), 3)
        except Exception as exc:  # figures of an overview: never worth a failed page
            logger.warning("console: broker figures unavailable ({})", type(exc).__name__)
            self._figures = None
        self._at = time.monotonic()
