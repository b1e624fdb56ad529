"""Requests per minute per key (per client address for anonymous callers) on submit and classify.

Counting is the `limits` library's (the engine under slowapi): fixed one-minute windows, in Redis
when REDIS_URL is set — shared by every API process, through the pool of the process's one Redis
client — and in process memory otherwise, where a limit holds per process only. slowapi's own
Limiter is not used: it drives `limits` synchronously, which with Redis would block the event loop
on every hit. If Redis is unreachable, RATE_LIMIT_FAIL_OPEN decides: let requests through unlimited
(default) or answer 503; either way it is logged once per outage and never becomes a 500.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from loguru import logger
from redis.asyncio import Redis

from service.callers.model import Caller
from service.config import Settings
from service.errors import ServiceUnavailable, TooManyRequests


class RequestRateLimiter:
    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self._settings = settings
        storage: Storage
        if redis is not None and settings.redis_url:
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self.shared = isinstance(storage, RedisStorage)
        self._limiter = FixedWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItem] = {}
        self._store_down = False

    def per_minute(self, caller: Caller) -> int:
        own = caller.limits.requests_per_minute
        return own if own is not None else self._settings.rate_limit_requests_per_minute

    async def hit(self, caller: Caller) -> dict[str, str]:
        """Count one request. The RateLimit-* headers to send, or 429 when over the limit."""
        per_minute = self.per_minute(caller)
        if per_minute <= 0:
            return {}
        item = self._items.get(per_minute) or self._items.setdefault(
            per_minute, RateLimitItemPerMinute(per_minute)
        )
        try:
            allowed = await self._limiter.hit(item, caller.rate_key)
            stats = await self._limiter.get_window_stats(item, caller.rate_key)
        except Exception as exc:  # the store, not the caller, failed: never a 500
            return self._store_failed(exc)
        if self._store_down:
            self._store_down = False
            logger.info("rate-limit store reachable again")
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(per_minute),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            raise TooManyRequests(
                f"The limit of {per_minute} requests per minute is reached; retry in {reset} s.",
                details={"limit": per_minute, "window_seconds": 60, "retry_after_seconds": reset},
                headers={**headers, "Retry-After": str(reset)},
            )
        return headers

    def _store_failed(self, exc: Exception) -> dict[str, str]:
        fail_open = self._settings.rate_limit_fail_open
        if not self._store_down:
            self._store_down = True
            logger.error(
                "rate-limit store unreachable ({}): requests are {} until it is back",
                type(exc).__name__,
                "let through unlimited" if fail_open else "refused with 503",
            )
        if fail_open:
            return {}
        raise ServiceUnavailable(
            "The rate limiter is unavailable; retry shortly.", code="rate_limiter_unavailable"
        )
