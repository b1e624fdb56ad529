"""Per-owner caps on the connections that stay open: SSE streams and long-polls (`?wait=`,
`Prefer: wait`, a chat completion's wait). Each one holds a slot of its owner while it is open;
past the cap the caller gets 429 with Retry-After instead of one more held connection, so one key
cannot use up the process's sockets and waiters. Counted per API process, in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Literal

from service.config import Settings
from service.errors import TooManyRequests

Kind = Literal["sse", "long_poll"]
RETRY_AFTER_SECONDS = 2
_NAMES = {"sse": "SSE streams", "long_poll": "long-polls"}
_SETTINGS = {"sse": "SSE_MAX_STREAMS_PER_OWNER", "long_poll": "LONG_POLL_MAX_PER_OWNER"}


class Slot:
    """One open connection of an owner; `release` may be called more than once."""

    __slots__ = ("_caps", "_key", "_released")

    def __init__(self, caps: ConnectionCaps, key: tuple[Kind, str]) -> None:
        self._caps, self._key, self._released = caps, key, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._caps._release(self._key)


class ConnectionCaps:
    def __init__(self, settings: Settings) -> None:
        self._caps: dict[Kind, int] = {
            "sse": settings.sse_max_streams_per_owner,
            "long_poll": settings.long_poll_max_per_owner,
        }
        self._open: dict[tuple[Kind, str], int] = {}

    def acquire(self, kind: Kind, owner_id: str | None) -> Slot:
        """A slot for one more connection of `owner_id`, or 429 when it has its cap open already."""
        key = (kind, owner_id or "")
        cap, held = self._caps[kind], self._open.get(key, 0)
        if cap > 0 and held >= cap:
            raise TooManyRequests(
                f"{held} {_NAMES[kind]} of this key are open already (the cap, {_SETTINGS[kind]}); "
                f"close one or retry in {RETRY_AFTER_SECONDS} s.",
                code="too_many_connections",
                details={"kind": kind, "limit": cap},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._open[key] = held + 1
        return Slot(self, key)

    @contextmanager
    def hold(self, kind: Kind, owner_id: str | None) -> Iterator[None]:
        slot = self.acquire(kind, owner_id)
        try:
            yield
        finally:
            slot.release()

    def open_count(self, kind: Kind, owner_id: str | None) -> int:
        return self._open.get((kind, owner_id or ""), 0)

    def _release(self, key: tuple[Kind, str]) -> None:
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)


async def released_after(slot: Slot, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream that gives its slot back when it ends, however it ends. A stream the server never
    started runs no `finally`: its response also releases the slot as a background task."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        slot.release()
