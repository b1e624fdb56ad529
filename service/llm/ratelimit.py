"""A fair, async sliding-window limiter on requests and tokens, for one backend in one process.

Why a sliding window of *finished* calls rather than a token bucket: a bucket lets a full burst
through right after a refilled minute, so a provider counting per rolling minute sees up to twice
the budget. Here a call occupies its slot from the moment it is granted until `window` seconds
after it *completed* - the provider saw it somewhere in between - so any `window`-long span at the
provider contains at most `max_requests` calls and `max_tokens` tokens (tokens as far as we could
know them: the prompt estimate before the call, replaced by the real usage after it).

Fairness: callers queue on an asyncio.Lock (FIFO); only the head of the queue waits for capacity,
so a large request cannot be starved by a stream of small ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from loguru import logger


@dataclass(slots=True)
class Reservation:
    tokens: int
    finished_at: float | None = None  # None while the call is in flight

    def record_usage(self, total_tokens: int) -> None:
        """Replace the pre-call estimate with what the server reported."""
        self.tokens = total_tokens


class RateLimiter:
    def __init__(
        self,
        *,
        max_requests: int = 0,
        max_tokens: int = 0,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_requests`/`max_tokens` per `window_seconds`; 0 disables that dimension."""
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.window = window_seconds
        self._clock = clock
        self._held: list[Reservation] = []
        self._queue = asyncio.Lock()
        self._released = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self.max_requests > 0 or self.max_tokens > 0

    @asynccontextmanager
    async def reserve(self, estimated_tokens: int) -> AsyncIterator[Reservation]:
        """Wait for budget, hold it for the duration of the block and `window` seconds after."""
        reservation = await self._acquire(estimated_tokens)
        try:
            yield reservation
        finally:
            reservation.finished_at = self._clock()
            self._released.set()

    async def _acquire(self, estimated_tokens: int) -> Reservation:
        tokens = estimated_tokens
        if self.max_tokens and tokens > self.max_tokens:
            # Could never fit: let it through alone rather than block the queue forever.
            logger.warning("LLM call needs ~{} tokens, over the {} budget", tokens, self.max_tokens)
            tokens = self.max_tokens
        async with self._queue:
            while True:
                wait = self._wait_seconds(tokens)
                if wait == 0.0:
                    reservation = Reservation(tokens)
                    self._held.append(reservation)
                    return reservation
                self._released.clear()
                try:
                    # None: everything held is still in flight; only a completion can free budget.
                    async with asyncio.timeout(wait):
                        await self._released.wait()
                except TimeoutError:
                    pass

    def _wait_seconds(self, tokens: int) -> float | None:
        """0 when `tokens` fit now; else seconds until the oldest finished call ages out (None: unknown)."""
        now = self._clock()
        self._held = [r for r in self._held if r.finished_at is None or r.finished_at + self.window > now]
        fits_requests = not self.max_requests or len(self._held) < self.max_requests
        fits_tokens = not self.max_tokens or sum(r.tokens for r in self._held) + tokens <= self.max_tokens
        if fits_requests and fits_tokens:
            return 0.0
        finished = [r.finished_at for r in self._held if r.finished_at is not None]
        return max(0.001, min(finished) + self.window - now) if finished else None
