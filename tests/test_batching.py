"""The group-commit Batcher: coalesces concurrent calls, answers each caller, isolates failures."""

from __future__ import annotations

import asyncio

import pytest

from service.db.batching import Batcher


class Recorder:
    def __init__(self, fail_items: set[int] | None = None, fail_all: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_items = fail_items or set()
        self.fail_all = fail_all

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await asyncio.sleep(0.01)  # a round trip: callers arriving now must wait for the next batch
        if self.fail_all:
            raise RuntimeError("database down")
        return [ValueError(f"bad {item}") if item in self.fail_items else item * 10 for item in items]


async def test_a_lone_call_is_a_batch_of_one() -> None:
    recorder = Recorder()
    assert await Batcher(recorder).call(7) == 70
    assert recorder.batches == [[7]]


async def test_concurrent_calls_are_coalesced_and_each_gets_its_own_answer() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder, max_parallel=1)
    results = await asyncio.gather(*(batcher.call(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert sum(len(batch) for batch in recorder.batches) == 100
    assert len(recorder.batches) < 10  # not one statement per call
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(100))


async def test_batches_respect_the_size_limit() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=8, max_parallel=1)
    await asyncio.gather(*(batcher.call(i) for i in range(50)))
    assert max(len(batch) for batch in recorder.batches) <= 8


async def test_a_failing_item_fails_only_its_caller() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(fail_items={3}))
    results = await asyncio.gather(*(batcher.call(i) for i in range(6)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]


async def test_a_failed_bulk_call_fails_its_callers_and_the_batcher_recovers() -> None:
    recorder = Recorder(fail_all=True)
    batcher: Batcher[int, int] = Batcher(recorder)
    with pytest.raises(RuntimeError, match="database down"):
        await batcher.call(1)
    recorder.fail_all = False
    assert await batcher.call(2) == 20


async def test_a_result_whose_caller_was_cancelled_is_handed_to_abandoned() -> None:
    undone: list[int] = []

    async def undo(result: int) -> None:
        undone.append(result)

    batcher: Batcher[int, int] = Batcher(Recorder(), abandoned=undo)
    task = asyncio.create_task(batcher.call(4))
    await asyncio.sleep(0.001)  # the bulk call is under way
    task.cancel()
    assert await batcher.call(5) == 50
    assert undone == [40]
