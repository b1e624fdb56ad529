"""Group commit: concurrent calls that arrive together are sent to the database as one statement.

Under load, dozens of submits (or claims, or completions) are in flight at once; sending each as
its own statement and commit makes PostgreSQL flush its log and the client pay a round trip per
row. A Batcher lets the first caller start a bulk call at once and queues everyone who arrives
meanwhile for the next one: at low load a batch is one item and adds no delay; under load batches
grow by themselves, which is exactly when the savings matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A bulk call answers every item: a result, or the exception that item alone should raise.
BulkCall = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        bulk_call: BulkCall[Item, Result],
        *,
        max_batch: int = 256,
        max_parallel: int = 2,
        abandoned: Callable[[Result], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """`abandoned` undoes a result whose caller was cancelled while the batch ran (a claim
        nobody will process, say); without it such results are dropped."""
        self._bulk_call = bulk_call
        self._abandoned = abandoned
        self._background: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        self._max_parallel = max_parallel
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running = 0

    async def call(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self._max_parallel:
            self._running += 1
            # Started on the next loop iteration, so callers arriving in this one join the batch.
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    results = await self._bulk_call([item for item, _ in batch])
                except BaseException as exc:  # the whole call failed: every caller learns why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    self._deliver(future, result)
        finally:
            self._running -= 1

    def _deliver(self, future: asyncio.Future[Result], result: Result | BaseException) -> None:
        if future.done():  # the caller was cancelled meanwhile
            if self._abandoned is not None and not isinstance(result, BaseException):
                task = asyncio.get_running_loop().create_task(self._abandoned(result))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
