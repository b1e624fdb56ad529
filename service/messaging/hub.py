"""The API side of the status events: wakes this process's waiters when their request changes.

Every API process reads the whole responses topic from its end (no consumer group, no commits:
a process only cares about what happens while it runs) and hands each event to the watches
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

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from loguru import logger
from pydantic import ValidationError

from service.config import Settings
from service.db.request_stats_repo import lane_of
from service.messaging.kafka import client_args, stop_client
from service.messaging.lane_rate import LaneRate
from service.schemas.events import StatusEvent


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
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        # Per lane, the spans of recent completions (the queue ETAs' rate).
        self._rates: dict[str, LaneRate] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self._settings.kafka_topic_responses,
            **client_args(self._settings, "hub"),
            group_id=None,  # every process reads every partition
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # Tansu answers a fetch only once this wait is over: it bounds the wake-up delay.
            fetch_max_wait_ms=self._settings.events_fetch_max_wait_ms,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(self._consumer), name="status-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await stop_client(self._consumer, "status hub consumer")

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

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:
                # Waiters still meet their deadline (and re-read the row then); keep trying.
                logger.warning("status hub: fetch failed ({}); retrying", exc)
                await asyncio.sleep(1)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        event = StatusEvent.from_bytes(record.value)
                    except ValidationError:
                        logger.warning("status hub: skipped an undecodable event at offset {}", record.offset)
                        continue
                    self.deliver(event)
