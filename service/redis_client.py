"""The one Redis client of a process (optional: only when REDIS_URL is set).

Opened at start-up (API lifespan, worker start) and closed on shutdown, never at import time. Every
limit that must hold across processes (per-key rate limits, the LLM backend's shared concurrency
and rates) uses this client rather than opening its own.
"""

from __future__ import annotations

from redis.asyncio import Redis

from service.config import Settings


def open_redis(settings: Settings) -> Redis | None:
    """A lazily connecting client, or None when REDIS_URL is not set (limits then hold per process)."""
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=15,
        decode_responses=False,
    )
