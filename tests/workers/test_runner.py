"""The one consumer loop (service/messaging/runner.py), against the real Tansu broker.

What the worker, the status hub and the webhook intake rely on, tested once: typed handlers get
decoded messages only; bad messages and failing handlers never stop the loop; offsets are committed
only past finished work; a reader without a group starts at the end; rebalancing and stopping keep
unfinished work for the next member; after the broker lost its state, `rewind()` reads the
re-created topic from the subscription's start.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel

from service.config import Settings
from service.messaging.embedded import EmbeddedBroker
from service.messaging.kafka import ensure_topics
from service.messaging.runner import ConsumerRunner, Handler, PoisonMessage, Subscription
from tests.support import make_settings

_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"  # unused: no database here


class Note(BaseModel):
    n: int


def _settings(bootstrap: str) -> Settings:
    return make_settings(_DATABASE, bootstrap, kafka_request_timeout_ms=5_000)


def _subscription(
    settings: Settings, group: str | None, start: Literal["earliest", "latest"] = "earliest"
) -> Subscription:
    return Subscription(
        [settings.kafka_topic_requests],
        group=group,
        start=start,
        role="test",
        options={
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": settings.kafka_session_timeout_ms // 6,
        },
    )


async def _produce(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.kafka_topic_requests, value, key=value[:8])
    finally:
        await producer.stop()


def _notes(*numbers: int) -> list[bytes]:
    return [Note(n=n).model_dump_json().encode() for n in numbers]


@asynccontextmanager
async def _running(runner: ConsumerRunner[Any], ready_within: float = 60) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), ready_within)
        yield
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        await asyncio.sleep(0.05)


def _collector(seen: list[int]) -> Handler[Note]:
    async def handle(note: Note) -> None:
        assert isinstance(note, Note)  # decoded before the handler, never a raw record
        seen.append(note.n)

    return handle


async def test_typed_messages_bad_ones_dead_lettered_and_offsets_committed(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap)
    await ensure_topics(settings)
    group = f"runner-{uuid.uuid4().hex[:6]}"
    seen: list[int] = []
    dead: list[tuple[bytes | None, str]] = []

    async def dead_letter(record: ConsumerRecord, reason: str, detail: str) -> None:
        dead.append((record.value, reason))

    async def handle(note: Note) -> None:
        if note.n == 13:
            raise PoisonMessage("thirteen")
        seen.append(note.n)

    runner = ConsumerRunner(
        settings, _subscription(settings, group), Note.model_validate_json, handle,
        dead_letter=dead_letter, concurrency=4, commit_interval=0.05,
    )  # fmt: skip
    async with _running(runner):
        await _produce(settings, [*_notes(1, 2), b"not json", b'{"n": "x"}', *_notes(13, 3)])
        await _until(lambda: len(seen) == 3 and len(dead) == 3, 30, "all handled")
    assert sorted(seen) == [1, 2, 3]
    assert sorted(reason for _, reason in dead) == ["poison"] * 3
    assert {value for value, _ in dead} >= {b"not json", b'{"n": "x"}'}

    # Everything was committed: the group's next member gets only what is new.
    again: list[int] = []
    runner = ConsumerRunner(
        settings, _subscription(settings, group), Note.model_validate_json, _collector(again),
        dead_letter=dead_letter, concurrency=4,
    )  # fmt: skip
    async with _running(runner):
        await _produce(settings, _notes(4))
        await _until(lambda: again == [4], 30, "the new message handled")
        await asyncio.sleep(0.5)
    assert again == [4]


async def test_failing_handlers_are_retried_then_given_up_or_waited_out(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap)
    await ensure_topics(settings)
    attempts: dict[int, int] = {}
    dead: list[str] = []

    async def flaky(note: Note) -> None:
        attempts[note.n] = attempts.get(note.n, 0) + 1
        if note.n == 1 or attempts[note.n] < 3:  # 1 always fails; 2 succeeds on its third try
            raise RuntimeError("not now")

    async def dead_letter(record: ConsumerRecord, reason: str, detail: str) -> None:
        dead.append(reason)

    runner = ConsumerRunner(
        settings, _subscription(settings, f"runner-{uuid.uuid4().hex[:6]}"), Note.model_validate_json,
        flaky, dead_letter=dead_letter, concurrency=4, retries=3,
    )  # fmt: skip
    async with _running(runner):
        await _produce(settings, _notes(1, 2))
        await _until(lambda: dead == ["handler_failed"] and attempts.get(2) == 3, 30, "settled")
    assert attempts == {1: 3, 2: 3}

    # retries=None (the webhook intake): a failing handler is tried until it succeeds.
    attempts.clear()

    async def recovers(note: Note) -> None:
        attempts[note.n] = attempts.get(note.n, 0) + 1
        if attempts[note.n] < 5:
            raise RuntimeError("database away")

    runner = ConsumerRunner(
        settings, _subscription(settings, f"runner-{uuid.uuid4().hex[:6]}"), Note.model_validate_json,
        recovers, concurrency=4, retries=None,
    )  # fmt: skip
    async with _running(runner):
        await _until(lambda: attempts.get(1) == 5 and attempts.get(2) == 5, 60, "both succeeded")


async def test_a_reader_without_a_group_starts_at_the_end_and_skips_bad_messages(
    kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap)
    await ensure_topics(settings)
    await _produce(settings, _notes(1, 2))  # before the reader: never seen
    seen: list[int] = []
    runner = ConsumerRunner(
        settings, _subscription(settings, None, "latest"), Note.model_validate_json, _collector(seen),
        concurrency=100, retries=1,
    )  # fmt: skip
    async with _running(runner):
        # Ready means placed: everything published from now on arrives.
        await _produce(settings, [*_notes(3), b"garbage", *_notes(4)])
        await _until(lambda: sorted(seen) == [3, 4], 30, "the new messages seen")
        await asyncio.sleep(0.5)
    assert sorted(seen) == [3, 4]


async def test_unfinished_work_goes_to_the_next_member(kafka_bootstrap: str) -> None:
    """Stopping (like a revocation) gives in-flight work a grace period, then cancels it without
    committing its offset: the group's next member handles it; finished work is not repeated."""
    settings = _settings(kafka_bootstrap)
    await ensure_topics(settings)
    group = f"runner-{uuid.uuid4().hex[:6]}"
    started: list[int] = []
    release = asyncio.Event()

    async def slow(note: Note) -> None:
        started.append(note.n)
        if note.n == 2:
            await release.wait()  # never set: still running at stop

    first = ConsumerRunner(
        settings, _subscription(settings, group), Note.model_validate_json, slow,
        concurrency=4, commit_interval=0.05, shutdown_grace=0.2,
    )  # fmt: skip
    async with _running(first):
        await _produce(settings, _notes(1))
        await _until(lambda: started == [1], 30, "1 handled")
        await asyncio.sleep(0.3)  # its offset committed
        await _produce(settings, _notes(2))
        await _until(lambda: started == [1, 2], 30, "2 started")

    seen: list[int] = []
    second = ConsumerRunner(
        settings, _subscription(settings, group), Note.model_validate_json, _collector(seen), concurrency=4
    )
    async with _running(second):
        await _until(lambda: seen == [2], 30, "2 handled by the next member")
        await asyncio.sleep(0.5)
    assert seen == [2]


async def test_two_members_share_the_partitions_and_handle_everything(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap)
    await ensure_topics(settings)
    group = f"runner-{uuid.uuid4().hex[:6]}"
    seen: list[int] = []

    def member() -> ConsumerRunner[Note]:
        return ConsumerRunner(
            settings, _subscription(settings, group), Note.model_validate_json, _collector(seen),
            concurrency=4, commit_interval=0.05,
        )  # fmt: skip

    a = member()
    async with _running(a):
        await _produce(settings, _notes(*range(10)))
        await _until(lambda: len(set(seen)) == 10, 30, "the first ten")
        b = member()  # joining makes the group rebalance
        async with _running(b):
            await _produce(settings, _notes(*range(10, 30)))
            await _until(lambda: set(seen) == set(range(30)), 60, "all thirty")
            assert a.consumer is not None and b.consumer is not None
            assert a.consumer.assignment() and b.consumer.assignment(), "one member got nothing"
            assert not a.consumer.assignment() & b.consumer.assignment()


async def test_after_the_broker_lost_its_state_rewind_reads_from_the_start_position() -> None:
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = _settings(broker.bootstrap_servers)
        await ensure_topics(settings)
        grouped: list[int] = []
        latest: list[int] = []
        members = [
            ConsumerRunner(
                settings, _subscription(settings, f"runner-{uuid.uuid4().hex[:6]}"),
                Note.model_validate_json, _collector(grouped), concurrency=4, commit_interval=0.05,
            ),
            ConsumerRunner(
                settings, _subscription(settings, None, "latest"), Note.model_validate_json,
                _collector(latest), concurrency=100,
            ),
        ]  # fmt: skip
        async with _running(members[0]), _running(members[1]):
            await _produce(settings, _notes(*range(20)))
            await _until(lambda: len(grouped) == 20 and len(latest) == 20, 30, "the first twenty")
            grouped.clear()
            latest.clear()

            broker.kill()
            await asyncio.sleep(1)
            await broker.astart()  # back empty: no topics, offsets or groups
            await ensure_topics(settings)
            for runner in members:  # what the broker monitor's reset listeners do
                runner.rewind()
                assert not runner.ready.is_set()
            for runner in members:  # placed again (the "latest" reader at the new end)
                await asyncio.wait_for(runner.ready.wait(), 60)
            # Fewer than before: positions from before the loss would skip all of them.
            await _produce(settings, _notes(100, 101, 102))
            await _until(
                lambda: sorted(grouped) == [100, 101, 102] and sorted(latest) == [100, 101, 102],
                90,
                "the re-created topic read",
            )
    finally:
        broker.stop()
