"""The API side of the status events: wakes this process's waiters when their request changes.

Every API process reads the whole responses topic from its end (no consumer group, no commits:
a process only cares about what happens while it runs), on the one consumer loop
(service/messaging/runner.py), and hands each event to the watches
registered for its request id — or its batch id — in this process. Long-polls, `Prefer: wait`, SSE
streams and chat completions all wait on a watch, so none of them reads the database in a loop,
and a request finished by any worker wakes its waiters in any API process.

Events are a hint, not the truth: a waiter reads the row once after registering its watch (the
request may have finished before) and once when woken or at its deadline (an event may be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from loguru import logger

from service.config import Settings
from service.db.request_stats_repo import lane_of
from service.messaging.lane_rate import LaneRate
from service.messaging.runner import ConsumerRunner, Subscription
from service.schemas.events import StatusEvent

if TYPE_CHECKING:
    from service.messaging.monitor import BrokerMonitor

# Delivering an event only wakes waiters (no I/O): many at once cost nothing, and a burst of
# events must never wait for a slot.
_CONCURRENCY = 1000


class Watch:
    """The events of one request (or batch) seen by this process since the watch began."""

    __slots__ = ("_hub", "_pending", "_signal", "key")

    def __init__(self, hub: StatusHub, key: uuid.UUID) -> None:
        self._hub = hub
        self.key = key
        self._pending: deque[StatusEvent] = deque()
        self._signal = asyncio.Event()

    def close(self) -> None:
        self._hub._close_watch(self)

    def push(self, event: StatusEvent) -> None:
        self._pending.append(event)
        self._signal.set()

    async def next(self, timeout: float) -> StatusEvent | None:
        """The next event, or None when `timeout` seconds pass without one."""
        if not self._pending:
            self._signal.clear()
            try:
                await asyncio.wait_for(self._signal.wait(), max(timeout, 0))
            except TimeoutError:
                return None
        return self._pending.popleft()

    def drain(self) -> None:
        """Forget the events that arrived meanwhile (a reader about to re-read the state)."""
        self._pending.clear()

    async def final(self, timeout: float) -> StatusEvent | None:
        """The first final-status event within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            event = await self.next(remaining)
            if event is None:
                return None
            if event.is_final:
                return event
        return None


class StatusHub:
    def __init__(self, settings: Settings, monitor: BrokerMonitor | None = None) -> None:
        self._settings = settings
        self._monitor = monitor
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        # Per lane, the spans of recent completions (the queue ETAs' rate).
        self._rates: dict[str, LaneRate] = {}
        self._runner = ConsumerRunner(
            settings,
            Subscription(
                [settings.kafka_topic_responses],
                group=None,  # every process reads every partition
                start="latest",
                role="hub",
                # Tansu answers a fetch only once this wait is over: it bounds the wake-up delay.
                options={"fetch_max_wait_ms": settings.events_fetch_max_wait_ms},
            ),
            StatusEvent.from_bytes,
            self._handle,
            concurrency=_CONCURRENCY,
            retries=1,
            shutdown_grace=0,
            broker_available=(lambda: monitor.is_up) if monitor is not None else (lambda: True),
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._runner.run(), name="status-hub")
        if self._monitor is not None:
            self._monitor.on_reset(self._broker_returned)
        # Events published once start() returns are seen; a broker still away is waited for by the
        # runner (waiters meet their deadlines meanwhile), not by the process's start.
        timeout = self._settings.kafka_request_timeout_ms / 1000
        try:
            await asyncio.wait_for(self._runner.ready.wait(), timeout)
        except TimeoutError:
            logger.warning("status hub: not consuming after {:.0f} s; it keeps trying", timeout)

    async def close(self) -> None:
        self._runner.stop()
        if self._task is not None:
            await self._task

    @property
    def ready(self) -> asyncio.Event:
        return self._runner.ready

    async def _broker_returned(self, _epoch_started_at: datetime) -> None:
        # The re-created topic starts again at offset 0, below our positions: read on from its end.
        self._runner.rewind()

    async def _handle(self, event: StatusEvent) -> None:
        self.deliver(event)

    def open_watch(self, key: uuid.UUID) -> Watch:
        """Events of request (or batch) `key` from now until the watch is closed."""
        watch = Watch(self, key)
        self._watches.setdefault(key, set()).add(watch)
        return watch

    def _close_watch(self, watch: Watch) -> None:
        watchers = self._watches.get(watch.key)
        if watchers is not None:
            watchers.discard(watch)
            if not watchers:
                del self._watches[watch.key]

    @contextlib.contextmanager
    def watch(self, key: uuid.UUID) -> Iterator[Watch]:
        """Events of request (or batch) `key` while the block runs."""
        watch = self.open_watch(key)
        try:
            yield watch
        finally:
            watch.close()

    @property
    def waiting(self) -> int:
        return sum(len(watchers) for watchers in self._watches.values())

    def completions_per_second(self, lane: str) -> float | None:
        """Requests of `lane` finished per busy second lately, as this process saw them; None when
        it has seen too few (lane_rate.py)."""
        rate = self._rates.get(lane)
        return rate.per_second(time.monotonic()) if rate is not None else None

    def deliver(self, event: StatusEvent) -> None:
        if event.is_final and not event.is_batch:
            ran = (
                (event.finished_at - event.started_at).total_seconds()
                if event.started_at and event.finished_at
                else 0.0
            )
            self._rates.setdefault(lane_of(event.batch_id), LaneRate()).add(time.monotonic(), ran)
        for key in {event.request_id, event.batch_id}:  # a batch's own event names it twice
            for watch in self._watches.get(key, ()) if key is not None else ():
                watch.push(event)
