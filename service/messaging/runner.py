"""The one consumer loop: the worker, the status hub and the webhook intake all run on it.

Its users differ only in what `Subscription` says (topics, group or none, start position), the
decoder and handler, and the worker's lane policy. A handler is an async function of one decoded,
validated message (`Handler[T]`); the runner owns everything around it:
- each record is decoded before the handler sees it; one that does not decode (or that the handler
  rejects with PoisonMessage) goes to the dead-letter sink if there is one, else it is logged and
  skipped: a bad message never stops the loop;
- a handler that raises is retried with back-off (`retries` times, or until stopped when None),
  then dead-lettered or logged;
- up to `concurrency` records are handled at once; when full, the runner waits for a slot (and
  polls with its partitions paused now and then, so it stays in the group however long the LLM
  takes);
- with a group, each partition's committed offset only moves past records whose handling finished,
  so a crash re-delivers everything that was not finished (at-least-once; handlers make effects
  exactly-once); without a group (the status hub) nothing is committed and every partition is read;
- on revocation and on shutdown, in-flight work gets a grace period, then offsets are committed;
- lanes (`BatchLane`, the worker's policy): records of the batch topic take at most `limit`
  slots, and only `limit_busy` while interactive records are being served (one arrived within the
  last second); the batch partitions are paused while their lane is full, and records fetched beyond
  the lane's room are sought back to be fetched again later, so interactive records always find a
  slot and never wait behind a batch;
- after the broker lost its state (`rewind()`, called when the broker monitor reports it back), the
  consumer's positions and any offsets committed since mean nothing: the runner forgets its
  bookkeeping and moves every partition it holds, or is given later, once to the subscription's
  start position of the re-created topic (the beginning; the end for a "latest" reader such as the
  status hub, which only cares about what happens from now on); the claims make re-read records
  no-ops. A reader without a group is placed there at every (re)start too. A partition whose
  offsets go backwards (the topic was re-created under a live consumer) is the same signal: the
  runner rewinds and reports it through `on_offsets_regressed`;
- every call that waits on the broker is bounded, so stopping never hangs on an absent broker;
- the runner makes its consumer itself, and tries again while the broker is away at start;
- `ready` is set once the consumer holds partitions (has joined its group) and, without a group,
  knows its positions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from loguru import logger
from pydantic import ValidationError

from service.config import Settings
from service.logging import throttled
from service.messaging.kafka import client_args, stop_client

T = TypeVar("T")
Handler = Callable[[T], Awaitable[None]]
# bytes → message; raises ValidationError or ValueError for a record that is not one.
Decoder = Callable[[bytes | None], T]
DeadLetterSink = Callable[[ConsumerRecord, str, str], Awaitable[None]]

# A failing handler is tried again after 0.5 s, 1 s, 2 s, ... up to this pause.
_RETRY_PAUSE_MAX_SECONDS = 10.0
# While every slot is busy, a poll at least this often keeps the member in its group (a consumer
# that has not polled for max_poll_interval_ms, 300 s by default, leaves it).
_KEEPALIVE_POLL_SECONDS = 10.0
# Interactive work counts as "being served" for this long after its last record arrived.
_INTERACTIVE_QUIET_SECONDS = 1.0
# Pause between attempts to start the consumer while the broker is away.
_RECONNECT_PAUSE_SECONDS = 1.0
# After a rewind, lower offsets than already seen are the rewind itself, not another broker reset.
_REWIND_SETTLE_SECONDS = 30.0
# Closing a client waits for the broker (leave the group, flush): not long, it may be gone.
_CLOSE_TIMEOUT_SECONDS = 3.0


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be handled (decoded, but unusable)."""


@dataclass(frozen=True)
class Subscription:
    """What is read, and how. `group=None`: no group and no commits, every partition is read."""

    topics: list[str]
    group: str | None
    start: Literal["earliest", "latest"]
    role: str  # names the Kafka client (client_id suffix)
    # Further AIOKafkaConsumer options (fetch waits, session timeouts, max_poll_records).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchLane:
    """The worker's lane policy: records of `topic` take at most `limit` slots, and `limit_busy`
    while interactive records are being served."""

    topic: str
    limit: int
    limit_busy: int


@dataclass
class _PartitionProgress:
    in_flight: set[int] = field(default_factory=set)
    highest_dispatched: int = -1
    committed: int = -1

    def commit_position(self) -> int:
        # Everything below the lowest unfinished offset is done; with none unfinished, all is.
        return min(self.in_flight) if self.in_flight else self.highest_dispatched + 1


class ConsumerRunner(Generic[T]):
    def __init__(
        self,
        settings: Settings,
        subscription: Subscription,
        decode: Decoder[T],
        handler: Handler[T],
        *,
        dead_letter: DeadLetterSink | None = None,
        concurrency: int,
        retries: int | None = 3,
        commit_interval: float = 0.5,
        shutdown_grace: float = 20.0,
        lane: BatchLane | None = None,
        on_offsets_regressed: Callable[[], None] | None = None,
        on_consuming: Callable[[bool], None] | None = None,
        broker_available: Callable[[], bool] = lambda: True,
    ) -> None:
        self._settings = settings
        self._subscription = subscription
        self._decode = decode
        self._retries = retries
        self._on_consuming = on_consuming
        self._consumer: AIOKafkaConsumer | None = None
        self._generation = 0  # which consumer the rebalance callbacks belong to
        # Partitions read again from the beginning since the last broker reset (None: no reset yet).
        self._rewound: set[TopicPartition] | None = None
        self._rewound_at = float("-inf")
        self._broker_timeout = settings.kafka_request_timeout_ms / 1000
        self._on_offsets_regressed = on_offsets_regressed
        self._broker_available = broker_available
        self._broker_call_task: asyncio.Future[None] | None = None
        self.ready = asyncio.Event()
        self._topics = subscription.topics
        self._handler = handler
        self._dead_letter = dead_letter
        self._concurrency = concurrency
        self._commit_interval = commit_interval
        self._grace = shutdown_grace
        self._progress: dict[TopicPartition, _PartitionProgress] = {}
        # Each task with its partition, offset and the bookkeeping it belongs to (replaced on a reset).
        self._tasks: dict[asyncio.Task[None], tuple[TopicPartition, int, _PartitionProgress]] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._paused: set[TopicPartition] = set()
        self._batch_topic = lane.topic if lane is not None else None
        self._batch_limit = lane.limit if lane is not None else concurrency
        self._batch_limit_busy = min(lane.limit_busy, lane.limit) if lane is not None else concurrency
        self._batch_in_flight = 0
        self._last_interactive = float("-inf")

    # --- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()  # a runner waiting for a slot looks at `_stopping` at once
        if self._broker_call_task is not None:
            self._broker_call_task.cancel()  # the final commit after draining tries again

    def rewind(self) -> None:
        """The broker lost its state: read every partition again from the beginning (once each)."""
        self._progress.clear()  # tasks in flight keep their own bookkeeping; it is never committed
        self._rewound = set()
        self.ready.clear()  # set again once every partition is placed
        self._rewound_at = self._loop_time()

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        last_commit = asyncio.get_running_loop().time()
        try:
            while not self._stopping.is_set():
                if self._consumer is None and not await self._open_consumer():
                    await self._pause(_RECONNECT_PAUSE_SECONDS)
                    continue
                free = self._concurrency - len(self._tasks)
                if free <= 0:
                    await self._wait_for_slot()
                else:
                    await self._poll(free)
                now = asyncio.get_running_loop().time()
                if now - last_commit >= self._commit_interval:
                    await self._commit()
                    last_commit = now
        finally:
            await self._drain(list(self._tasks))
            await self._commit(timeout=_CLOSE_TIMEOUT_SECONDS)
            await self._close_consumer()

    async def _poll(self, free: int) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._set_paused(False)
        if self._rewound is not None:
            pending = consumer.assignment() - self._rewound
            # Seeking asks the broker for the offsets: bounded, and tried again next poll.
            if pending and await self._broker_call(self._seek_to_start(consumer, pending)) is None:
                self._rewound |= pending
                if self._subscription.group is not None:
                    logger.info("reading {} partition(s) again from the {}", len(pending), self._start_name)
        self._set_ready(consumer)
        # A full batch lane is refilled as soon as a slot frees: short polls meanwhile. Every free
        # slot is offered (interactive records may fill them all; capping the fetch at the lane's
        # room would starve them); batch records beyond the room are sought back in _dispatch_all.
        wait_ms = 10 if self._batch_room() <= 0 else 200
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=free)
        # Interactive records first: they take their slots before the batch lane's.
        for tp in sorted(batches, key=lambda tp: tp.topic == self._batch_topic):
            self._dispatch_all(tp, batches[tp])
        self._set_ready(consumer)

    def _set_ready(self, consumer: AIOKafkaConsumer) -> None:
        if self.ready.is_set() or not consumer.assignment():
            return
        if self._rewound is not None and consumer.assignment() - self._rewound:
            return  # positions not yet placed (a reader without a group, or after a reset)
        self.ready.set()
        if self._on_consuming is not None:
            self._on_consuming(True)
        # "worker ready: joined the group" is what operators (README) and the process tests look for.
        logger.info(
            "{} ready: {}{} partition(s) of {} assigned",
            self._subscription.role,
            f"joined the group {self._subscription.group}, " if self._subscription.group else "",
            len(consumer.assignment()),
            ", ".join(self._topics),
        )

    @property
    def _start_name(self) -> str:
        return "beginning" if self._subscription.start == "earliest" else "end"

    def _seek_to_start(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> Awaitable[Any]:
        if self._subscription.start == "earliest":
            return consumer.seek_to_beginning(*partitions)
        return consumer.seek_to_end(*partitions)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- the consumer ------------------------------------------------------------------------------

    async def _open_consumer(self) -> bool:
        self._generation += 1
        sub = self._subscription
        consumer = AIOKafkaConsumer(
            **client_args(self._settings, sub.role),
            group_id=sub.group,
            enable_auto_commit=False,
            auto_offset_reset=sub.start,
            **sub.options,
        )
        try:
            await asyncio.wait_for(consumer.start(), self._broker_timeout)
        except Exception as exc:
            throttled("consumer-start").warning("consumer could not start ({}); retrying", exc)
            await stop_client(consumer, "consumer")
            return False
        consumer.subscribe(self._topics, listener=_Rebalance(self, self._generation))
        self._consumer = consumer
        if sub.group is None and self._rewound is None:
            # No committed positions to go on: place every partition at the start position
            # explicitly, so that `ready` means "every message published from now on is seen".
            self._rewound = set()
        return True

    async def _close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        self.ready.clear()
        if self._on_consuming is not None:
            self._on_consuming(False)
        if self._subscription.group is None:
            self._rewound = None  # the next consumer places its positions again
        self._generation += 1  # callbacks the closing consumer still makes are stale
        await stop_client(consumer, "consumer")

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The current consumer (None while it is being opened), for gauges."""
        return self._consumer

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
            if self._consumer is not None:
                self._set_paused(True)
                await self._consumer.getmany(timeout_ms=0)

    def _set_paused(self, paused: bool) -> None:
        """Pause everything (no free slot), or only the batch partitions whose lane is full."""
        consumer = self._consumer
        if consumer is None:
            return
        assignment = consumer.assignment()
        lane_full = self._batch_room() <= 0
        wanted = {tp for tp in assignment if paused or (lane_full and tp.topic == self._batch_topic)}
        if wanted - self._paused:
            consumer.pause(*(wanted - self._paused))
        resumed = (self._paused & assignment) - wanted
        if resumed:
            consumer.resume(*resumed)
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
            if is_batch and self._batch_room() <= 0 and self._consumer is not None:
                # No room in the lane: fetch these again later rather than hold them here.
                self._consumer.seek(tp, record.offset)
                return
            self._dispatch(tp, record)

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        progress = self._progress.setdefault(tp, _PartitionProgress())
        if record.offset in progress.in_flight:
            return  # delivered again while still being handled
        if record.offset <= progress.highest_dispatched:
            # A consumer never goes back by itself (the lane's seeks go to records not yet
            # dispatched): the partition started again from zero. Right after a rewind this is the
            # rewind itself.
            if self._loop_time() - self._rewound_at > _REWIND_SETTLE_SECONDS:
                self._broker_reset_seen(tp, progress.highest_dispatched, record.offset)
            progress = self._progress[tp] = _PartitionProgress()
        progress.in_flight.add(record.offset)
        progress.highest_dispatched = record.offset
        task = asyncio.create_task(self._handle(record))
        self._tasks[task] = (tp, record.offset, progress)
        if tp.topic == self._batch_topic:
            self._batch_in_flight += 1
        task.add_done_callback(self._finished)

    def _broker_reset_seen(self, tp: TopicPartition, was: int, now: int) -> None:
        throttled("offsets-regressed").warning(
            "{} went back from offset {} to {}: the broker lost this topic's data", tp, was, now
        )
        self.rewind()
        if self._on_offsets_regressed is not None:
            self._on_offsets_regressed()

    def _finished(self, task: asyncio.Task[None]) -> None:
        tp, offset, progress = self._tasks.pop(task)
        if tp.topic == self._batch_topic:
            self._batch_in_flight -= 1
        # A cancelled record stays "in flight": the offset must not move past unfinished work.
        if not task.cancelled():
            progress.in_flight.discard(offset)
        self._slot_freed.set()

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            message = self._decode(record.value)
        except (ValidationError, ValueError) as exc:
            detail = exc.errors(include_url=False)[:3] if isinstance(exc, ValidationError) else exc
            await self._to_dead_letter(record, "poison", f"not a valid message: {detail}")
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(message)
                return
            except PoisonMessage as exc:
                await self._to_dead_letter(record, "poison", str(exc))
                return
            except Exception as exc:
                if (self._retries is not None and attempt >= self._retries) or self._stopping.is_set():
                    logger.exception(
                        "record {}:{}@{} kept failing", record.topic, record.partition, record.offset
                    )
                    await self._to_dead_letter(record, "handler_failed", f"{type(exc).__name__}: {exc}")
                    return
                throttled(f"handler-{self._subscription.role}").warning(
                    "{} handler failed (attempt {}): {}; retrying", self._subscription.role, attempt, exc
                )
                await self._pause(min(0.5 * 2**attempt, _RETRY_PAUSE_MAX_SECONDS))

    async def _to_dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        if self._dead_letter is None:
            # Nowhere to keep it (the hub, the webhook intake): say so and go on.
            throttled(f"skipped-{self._subscription.role}").warning(
                "{}: skipped record {}:{}@{} ({}): {}",
                self._subscription.role,
                record.topic,
                record.partition,
                record.offset,
                reason,
                detail[:300],
            )
            return
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

    async def _commit(
        self, partitions: set[TopicPartition] | None = None, timeout: float | None = None
    ) -> None:
        offsets = {}
        for tp, progress in self._progress.items():
            if partitions is not None and tp not in partitions:
                continue
            position = progress.commit_position()
            if position > progress.committed and position > 0:
                offsets[tp] = OffsetAndMetadata(position, "")
        if self._subscription.group is None:
            return  # a reader without a group keeps no offsets
        if not offsets or self._consumer is None or not self._broker_available():
            return  # with the broker known to be away, a commit could only wait and fail
        # aiokafka waits for a coordinator as long as none is known.
        failure = await self._broker_call(self._consumer.commit(offsets), timeout)
        if failure is not None:
            throttled("offset-commit").warning(
                "offset commit failed ({}); work since the last commit may be re-delivered", failure
            )
            return
        for tp, meta in offsets.items():
            kept = self._progress.get(tp)  # a revocation may have dropped it during the commit
            if kept is not None:
                kept.committed = meta.offset

    async def _broker_call(self, call: Awaitable[Any], timeout: float | None = None) -> str | None:
        """Await a call that waits on the broker, bounded by `timeout` (the request timeout by
        default) and cut short by stop() (the broker may have gone just before the monitor noticed).
        None when it succeeded, else why not; errors other than the broker's are raised."""
        call_task = self._broker_call_task = asyncio.ensure_future(
            asyncio.wait_for(call, timeout or self._broker_timeout)
        )
        try:
            await asyncio.wait({call_task})
        finally:
            self._broker_call_task = None
            call_task.cancel()  # a no-op once done; otherwise we are being cancelled ourselves
        if call_task.cancelled():
            if asyncio.iscoroutine(call):
                call.close()  # cut short before it began: no "never awaited" warning
            return "stopping"
        failure = call_task.exception()
        if failure is None:
            return None
        if not isinstance(failure, CommitFailedError | KafkaError | TimeoutError):
            raise failure
        return type(failure).__name__

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
        await self._drain([task for task, (tp, _, _) in self._tasks.items() if tp in revoked])
        await self._commit(revoked)
        for tp in revoked:
            self._progress.pop(tp, None)
        self._paused -= revoked


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner, generation: int) -> None:
        self._runner = runner
        self._generation = generation

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._generation == self._runner._generation:  # not from a consumer being closed
            await self._runner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
