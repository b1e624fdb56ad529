"""The one consumer runner: polls, bounds concurrency, commits only finished work, dead-letters poison.

A handler is a plain async function of one record. The runner owns everything around it:
- up to `concurrency` records are handled at once; when full, the runner waits for a slot (and
  polls with its partitions paused now and then, so it stays in the group however long the LLM
  takes);
- each partition's committed offset only moves past records whose handling finished, so a crash
  re-delivers everything that was not finished (at-least-once; handlers make effects exactly-once);
- a record the handler rejects as poison, or that keeps failing, goes to the dead-letter topic with
  the reason in its headers, and the runner goes on;
- on revocation and on shutdown, in-flight work gets a grace period, then offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from loguru import logger

Handler = Callable[[ConsumerRecord], Awaitable[None]]
DeadLetterSink = Callable[[ConsumerRecord, str, str], Awaitable[None]]

_HANDLER_RETRIES = 3
# While every slot is busy, a poll at least this often keeps the member in its group (a consumer
# that has not polled for max_poll_interval_ms, 300 s by default, leaves it).
_KEEPALIVE_POLL_SECONDS = 10.0


class PoisonMessage(Exception):
    """Raised by a handler for a record that can never be handled (undecodable, invalid)."""


@dataclass
class _PartitionProgress:
    in_flight: set[int] = field(default_factory=set)
    highest_dispatched: int = -1
    committed: int = -1

    def commit_position(self) -> int:
        # Everything below the lowest unfinished offset is done; with none unfinished, all is.
        return min(self.in_flight) if self.in_flight else self.highest_dispatched + 1


class ConsumerRunner:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        handler: Handler,
        dead_letter: DeadLetterSink,
        *,
        concurrency: int,
        commit_interval: float = 0.5,
        shutdown_grace: float = 20.0,
    ) -> None:
        self._consumer = consumer
        self._topics = topics
        self._handler = handler
        self._dead_letter = dead_letter
        self._concurrency = concurrency
        self._commit_interval = commit_interval
        self._grace = shutdown_grace
        self._progress: dict[TopicPartition, _PartitionProgress] = {}
        self._tasks: dict[asyncio.Task[None], tuple[TopicPartition, int]] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._paused = False

    # --- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()  # a runner waiting for a slot looks at `_stopping` at once

    async def run(self) -> None:
        self._consumer.subscribe(self._topics, listener=_Rebalance(self))
        last_commit = asyncio.get_running_loop().time()
        try:
            while not self._stopping.is_set():
                free = self._concurrency - len(self._tasks)
                if free <= 0:
                    await self._wait_for_slot()
                else:
                    self._set_paused(False)
                    batches = await self._consumer.getmany(timeout_ms=200, max_records=free)
                    for tp, records in batches.items():
                        for record in records:
                            self._dispatch(tp, record)
                now = asyncio.get_running_loop().time()
                if now - last_commit >= self._commit_interval:
                    await self._commit()
                    last_commit = now
        finally:
            await self._drain(list(self._tasks))
            await self._commit()

    # --- dispatch ----------------------------------------------------------------------------------

    async def _wait_for_slot(self) -> None:
        """Every slot is busy: wait for one to free up instead of polling. Polling would either hand
        over records there is no slot for or, with the partitions paused, make the consumer drop
        what it had prefetched, so every refill cost another fetch from the broker (a 200-wide
        worker at 200 ms per request ran at a fraction of its concurrency that way)."""
        self._slot_freed.clear()
        try:
            await asyncio.wait_for(self._slot_freed.wait(), _KEEPALIVE_POLL_SECONDS)
        except TimeoutError:
            # Still full after a long while (a slow model): poll with the partitions paused, so
            # that nothing is handed over, only to stay in the group.
            self._set_paused(True)
            await self._consumer.getmany(timeout_ms=0)

    def _set_paused(self, paused: bool) -> None:
        if paused and not self._paused:
            self._consumer.pause(*self._consumer.assignment())
        elif not paused and self._paused:
            self._consumer.resume(*self._consumer.assignment())
        self._paused = paused

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        progress = self._progress.setdefault(tp, _PartitionProgress())
        if record.offset <= progress.highest_dispatched:
            return  # already handled or in flight (re-fetched after a seek)
        progress.in_flight.add(record.offset)
        progress.highest_dispatched = record.offset
        task = asyncio.create_task(self._handle(record))
        self._tasks[task] = (tp, record.offset)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        tp, offset = self._tasks.pop(task)
        progress = self._progress.get(tp)
        # A cancelled record stays "in flight": the offset must not move past unfinished work.
        if progress is not None and not task.cancelled():
            progress.in_flight.discard(offset)
        self._slot_freed.set()

    async def _handle(self, record: ConsumerRecord) -> None:
        for attempt in range(1, _HANDLER_RETRIES + 1):
            try:
                await self._handler(record)
                return
            except PoisonMessage as exc:
                await self._to_dead_letter(record, "poison", str(exc))
                return
            except Exception as exc:
                if attempt == _HANDLER_RETRIES:
                    logger.exception(
                        "record {}:{}@{} kept failing", record.topic, record.partition, record.offset
                    )
                    await self._to_dead_letter(record, "handler_failed", f"{type(exc).__name__}: {exc}")
                    return
                logger.warning("handler failed (attempt {}): {}; retrying", attempt, exc)
                await asyncio.sleep(0.5 * 2**attempt)

    async def _to_dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        try:
            await self._dead_letter(record, reason, detail)
            logger.warning(
                "record {}:{}@{} dead-lettered ({}): {}",
                record.topic,
                record.partition,
                record.offset,
                reason,
                detail[:300],
            )
        except Exception:
            # Not committing past it would block the partition forever; the database sweeper
            # re-publishes any request row this record pointed to.
            logger.exception(
                "could not dead-letter record {}:{}@{}", record.topic, record.partition, record.offset
            )

    # --- commits -----------------------------------------------------------------------------------

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        offsets = {}
        for tp, progress in self._progress.items():
            if partitions is not None and tp not in partitions:
                continue
            position = progress.commit_position()
            if position > progress.committed and position > 0:
                offsets[tp] = OffsetAndMetadata(position, "")
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            logger.warning("offset commit failed ({}); work since the last commit may be re-delivered", exc)
            return
        for tp, meta in offsets.items():
            kept = self._progress.get(tp)  # a revocation may have dropped it during the commit
            if kept is not None:
                kept.committed = meta.offset

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self._grace)
        for task in pending:
            task.cancel()  # the handler gives its claim back; the record stays uncommitted
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._drain([task for task, (tp, _) in self._tasks.items() if tp in revoked])
        await self._commit(revoked)
        for tp in revoked:
            self._progress.pop(tp, None)
        self._paused = False


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
