"""Backend capacity: a cap on calls in flight plus request/token rates, per process or shared by all.

A provider grants capacity per account, not per worker: GigaChat gives a company 10 concurrent
streams and an individual 1. With REDIS_URL set every worker process (and the API, which classifies
with the model) takes its slot from the same Redis keys, so the cap and the rates hold for the whole
deployment; without it they hold per process (`LocalCapacity`), as before.

Shared state per backend, all updated atomically by Lua scripts that read the Redis server's clock
(so the workers' clocks do not matter):
- `inflight`: sorted set of lease id -> lease expiry. A worker renews its leases while its calls
  run; one that dies stops renewing and its slots come free after LEASE_SECONDS.
- `calls` + `tokens`: the sliding window of ratelimit.py - a call counts from its grant until
  `window` seconds after it finished (while in flight its expiry is pushed ahead by the lease), with
  its token estimate replaced by the reported usage when it finishes.

If Redis cannot be reached the limiter degrades to the per-process limits, logs that once, and tries
Redis again every REDIS_RETRY_SECONDS; requests keep flowing either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import Settings
from service.llm.ratelimit import RateLimiter, Reservation

LEASE_SECONDS = 15.0
REDIS_RETRY_SECONDS = 5.0
POLL_SECONDS = 0.1  # how often the head of a waiting queue asks again while the backend is full
WINDOW_SECONDS = 60.0  # the rates are per minute

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

# KEYS: inflight, calls, tokens. ARGV: id, cap, max_requests, max_tokens, window, lease, tokens.
# Returns {1} when granted, else {0, seconds until a rate slot ages out (-1: until a release)}.
_ACQUIRE = (
    _NOW
    + """
local cap, max_requests, max_tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, lease, want = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local aged = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, #aged do
  redis.call('ZREM', KEYS[2], aged[i])
  redis.call('HDEL', KEYS[3], aged[i])
end
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  return {0, '-1'}
end
local rate_full = max_requests > 0 and redis.call('ZCARD', KEYS[2]) >= max_requests
if not rate_full and max_tokens > 0 then
  local used = 0
  for _, value in ipairs(redis.call('HVALS', KEYS[3])) do used = used + tonumber(value) end
  rate_full = used + want > max_tokens
end
if rate_full then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) - now)}
end
local ttl = math.ceil((window + lease) * 1000) + 1000
if cap > 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if max_requests > 0 or max_tokens > 0 then
  redis.call('ZADD', KEYS[2], now + window + lease, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], want)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return {1}
"""
)

# KEYS: inflight, calls. ARGV: id, window, lease. Pushes the lease (and the window) of a running call.
_RENEW = (
    _NOW
    + """
local window, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', now + window + lease, ARGV[1])
return 1
"""
)

# KEYS: inflight, calls, tokens. ARGV: id, window, tokens. The call finished: free its slot, keep it
# in the rate window for `window` more seconds with its real token count.
_RELEASE = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
end
return 1
"""
)

_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class Capacity(Protocol):
    def reserve(self, estimated_tokens: int) -> contextlib.AbstractAsyncContextManager[Reservation]:
        """Wait for a slot (and rate budget); hold it for the block."""


class LocalCapacity:
    """The limits of one process: an asyncio semaphore for the cap, ratelimit.RateLimiter for rates."""

    def __init__(self, *, max_concurrency: int = 0, rates: RateLimiter | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.max_requests = rates.max_requests if rates is not None else 0
        self.max_tokens = rates.max_tokens if rates is not None else 0
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None
        self._rates = rates if rates is not None and rates.enabled else None

    @asynccontextmanager
    async def reserve(self, estimated_tokens: int) -> AsyncIterator[Reservation]:
        async with contextlib.AsyncExitStack() as held:
            if self._slots is not None:
                await held.enter_async_context(self._slots)
            if self._rates is not None:
                yield await held.enter_async_context(self._rates.reserve(estimated_tokens))
            else:
                yield Reservation(estimated_tokens)


class SharedCapacity:
    """The same limits for every process that uses the same Redis and key prefix."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        *,
        max_concurrency: int = 0,
        max_requests: int = 0,
        max_tokens: int = 0,
        window_seconds: float = WINDOW_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        fallback: LocalCapacity | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.window = window_seconds
        self.lease = lease_seconds
        self._keys = [f"{{{key}}}:inflight", f"{{{key}}}:calls", f"{{{key}}}:tokens"]
        self._acquire_script: Any = redis.register_script(_ACQUIRE)
        self._renew_script: Any = redis.register_script(_RENEW)
        self._release_script: Any = redis.register_script(_RELEASE)
        self._fallback = fallback or LocalCapacity(
            max_concurrency=max_concurrency,
            rates=RateLimiter(
                max_requests=max_requests, max_tokens=max_tokens, window_seconds=window_seconds
            ),
        )
        self._queue = asyncio.Lock()  # FIFO within this process: only the head polls Redis
        self._redis_down_until = 0.0
        self._degraded = False

    @asynccontextmanager
    async def reserve(self, estimated_tokens: int) -> AsyncIterator[Reservation]:
        tokens = min(estimated_tokens, self.max_tokens) if self.max_tokens else estimated_tokens
        lease_id: str | None = None
        try:
            lease_id = await self._acquire(tokens)
        except _REDIS_FAILURES as exc:
            self._redis_failed(exc)
        if lease_id is None:
            async with self._fallback.reserve(estimated_tokens) as reservation:
                yield reservation
            return
        reservation = Reservation(tokens)
        renewing = asyncio.create_task(self._renew(lease_id))
        try:
            yield reservation
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await self._release(lease_id, reservation.tokens)

    async def _acquire(self, tokens: int) -> str | None:
        """A granted lease id, or None while Redis is known to be down (use the local limits)."""
        lease_id = uuid.uuid4().hex
        args = [
            lease_id,
            self.max_concurrency,
            self.max_requests,
            self.max_tokens,
            self.window,
            self.lease,
            tokens,
        ]
        async with self._queue:
            while True:
                # Checked in the loop: callers queued behind a failed one must not each wait for
                # their own connection timeout.
                if time.monotonic() < self._redis_down_until:
                    return None
                granted, *hint = await self._acquire_script(keys=self._keys, args=args)
                if int(granted):
                    self._redis_back()
                    return lease_id
                ages_out = float(hint[0]) if hint else -1.0
                wait = POLL_SECONDS if ages_out < 0 else min(max(ages_out, 0.005), 1.0)
                await asyncio.sleep(wait * random.uniform(0.5, 1.0))

    async def _renew(self, lease_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._renew_script(keys=self._keys[:2], args=[lease_id, self.window, self.lease])
            except _REDIS_FAILURES as exc:
                self._redis_failed(exc)  # the lease may lapse: at worst one call over the cap

    async def _release(self, lease_id: str, tokens: int) -> None:
        try:
            await self._release_script(keys=self._keys, args=[lease_id, self.window, tokens])
        except _REDIS_FAILURES as exc:
            self._redis_failed(exc)  # the lease expires by itself

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "Redis unreachable for the shared LLM capacity ({}): "
                "limits hold per process until it is back",
                type(exc).__name__,
            )

    def _redis_back(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.info("Redis reachable again: the LLM capacity is shared by all workers again")


def capacity_from_settings(settings: Settings, backend_name: str, redis: Redis | None) -> Capacity | None:
    """The configured limits for `backend_name`: shared through `redis` when given, else per process;
    None when no limit is set."""
    cap = settings.llm_max_concurrency
    requests, tokens = settings.llm_requests_per_minute, settings.llm_tokens_per_minute
    if not (cap or requests or tokens):
        return None
    if redis is not None:
        key = f"{settings.llm_capacity_key_prefix}:{backend_name}"
        return SharedCapacity(redis, key, max_concurrency=cap, max_requests=requests, max_tokens=tokens)
    rates = RateLimiter(max_requests=requests, max_tokens=tokens, window_seconds=WINDOW_SECONDS)
    return LocalCapacity(max_concurrency=cap, rates=rates)
