"""The one consumer runner: polls, bounds concurrency, commits only finished work, dead-letters poison.

A handler is a plain async function of one record. The runner owns everything around it:
- up to `concurrency` records are handled at once; when full, the runner waits for a slot (and
  polls with its partitions paused now and then, so it stays in the group however long the LLM
  takes);
- each partition's committed offset only moves past records whose handling finished, so a crash
  re-delivers everything that was not finished (at-least-once; handlers make effects exactly-once);
- a record the handler rejects as poison, or that keeps failing, goes to the dead-letter topic with
  the reason in its headers, and the runner goes on;
- on revocation and on shutdown, in-flight work gets a grace period, then offsets are committed;
- lanes: records of the batch topic (if one is given) take at most `batch_limit` slots, and only
  `batch_limit_busy` while interactive records are being served (one arrived within the last
  second); the batch partitions are paused while their lane is full, and records fetched beyond
  the lane's room are sought back to be fetched again later, so interactive records always find a
  slot and never wait behind a batch.
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
# Interactive work counts as "being served" for this long after its last record arrived.
_INTERACTIVE_QUIET_SECONDS = 1.0


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
        batch_topic: str | None = None,
        batch_limit: int | None = None,
        batch_limit_busy: int | None = None,
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
        self._paused: set[TopicPartition] = set()
        self._batch_topic = batch_topic
        self._batch_limit = batch_limit or concurrency
        self._batch_limit_busy = min(batch_limit_busy or self._batch_limit, self._batch_limit)
        self._batch_in_flight = 0
        self._last_interactive = float("-inf")

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
                    # A full batch lane is refilled as soon as a slot frees: short polls meanwhile.
                    # With room in the lane, take no more than it holds: records beyond it would
                    # have to be sought back and fetched again.
                    room = self._batch_room()
                    wait_ms = 10 if room <= 0 else 200
                    wanted = free if room <= 0 else min(free, room)
                    batches = await self._consumer.getmany(timeout_ms=wait_ms, max_records=wanted)
                    # Interactive records first: they take their slots before the batch lane's.
                    for tp in sorted(batches, key=lambda tp: tp.topic == self._batch_topic):
                        self._dispatch_all(tp, batches[tp])
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
        """Pause everything (no free slot), or only the batch partitions whose lane is full."""
        assignment = self._consumer.assignment()
        lane_full = self._batch_room() <= 0
        wanted = {tp for tp in assignment if paused or (lane_full and tp.topic == self._batch_topic)}
        if wanted - self._paused:
            self._consumer.pause(*(wanted - self._paused))
        resumed = (self._paused & assignment) - wanted
        if resumed:
            self._consumer.resume(*resumed)
        self._paused = wanted

    def _batch_room(self) -> int:
        if self._batch_topic is None:
            return self._concurrency
        busy = asyncio.get_running_loop().time() - self._last_interactive < _INTERACTIVE_QUIET_SECONDS
        return (self._batch_limit_busy if busy else self._batch_limit) - self._batch_in_flight

    def _dispatch_all(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        is_batch = tp.topic == self._batch_topic
        if not is_batch and records:
            self._last_interactive = asyncio.get_running_loop().time()
        for record in records:
            if is_batch and self._batch_room() <= 0:
                # No room in the lane: fetch these again later rather than hold them here.
                self._consumer.seek(tp, record.offset)
                return
            self._dispatch(tp, record)

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        progress = self._progress.setdefault(tp, _PartitionProgress())
        if record.offset <= progress.highest_dispatched:
            return  # already handled or in flight (re-fetched after a seek)
        progress.in_flight.add(record.offset)
        progress.highest_dispatched = record.offset
        task = asyncio.create_task(self._handle(record))
        self._tasks[task] = (tp, record.offset)
        if tp.topic == self._batch_topic:
            self._batch_in_flight += 1
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        tp, offset = self._tasks.pop(task)
        if tp.topic == self._batch_topic:
            self._batch_in_flight -= 1
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
        self._paused -= revoked


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
