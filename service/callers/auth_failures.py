"""401s counted per client address, in fixed one-minute windows, in process memory.

Per process on purpose: it bounds what one address can make this process do (key lookups), and a
refused guess costs no Redis round trip. With several API processes an address gets its allowance
from each.
"""

from __future__ import annotations

import math
import time

from service.errors import TooManyRequests

WINDOW_SECONDS = 60.0
# Addresses remembered at most; past it, windows that ended are dropped (then, if need be, all).
_LIMIT = 10_000


class FailedAuthentications:
    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute  # 0: not limited
        # client address -> (window start, monotonic; failures in it)
        self._windows: dict[str, tuple[float, int]] = {}

    def check(self, address: str | None) -> None:
        """429 with Retry-After while `address` has used up its failures of this window."""
        if self._per_minute <= 0:
            return
        window = self._windows.get(address or "unknown")
        if window is None:
            return
        started, count = window
        left = started + WINDOW_SECONDS - time.monotonic()
        if left > 0 and count >= self._per_minute:
            retry = max(1, math.ceil(left))
            raise TooManyRequests(
                f"Too many failed authentications from this address; retry in {retry} s.",
                code="too_many_auth_failures",
                details={"limit": self._per_minute, "window_seconds": int(WINDOW_SECONDS)},
                headers={"Retry-After": str(retry)},
            )

    def failed(self, address: str | None) -> None:
        if self._per_minute <= 0:
            return
        key, now = address or "unknown", time.monotonic()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, count = now, 0
        if key not in self._windows and len(self._windows) >= _LIMIT:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW_SECONDS}
            if len(self._windows) >= _LIMIT:
                self._windows.clear()
        self._windows[key] = (started, count + 1)
