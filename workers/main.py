"""Worker process assembly: opens clients, runs the consumer runner and the sweeper, closes all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from loguru import logger

from service import monitoring
from service.config import Settings
from service.db.models import utcnow
from service.llm.base import LLMBackend
from service.messaging.monitor import BrokerMonitor
from service.messaging.runner import BatchLane, ConsumerRunner, Subscription
from service.pipeline.classify_model import warm_up as load_classifier
from service.runtime import open_runtime
from service.schemas.envelope import RequestEnvelope
from service.usecases.processing import Processor
from workers.feeder import BatchFeeder
from workers.gauges import refresh_gauges
from workers.handlers import RequestHandler
from workers.sweeper import Sweeper

_START_RETRY_FIRST_SECONDS = 0.5
_START_RETRY_MAX_SECONDS = 10.0
T = TypeVar("T")


class Worker:
    """One consumer-group member. `run()` returns after `stop()` once in-flight work is settled.

    `ready` is set while the worker holds partitions of the request topics (it has joined the group)
    and the broker is usable; a request published then reaches it without waiting for a join.
    """

    def __init__(self, settings: Settings, backend: LLMBackend | None = None) -> None:
        self.settings = settings
        self._backend = backend
        self._stopping = asyncio.Event()
        self._runner: ConsumerRunner[RequestEnvelope] | None = None
        self._monitor: BrokerMonitor | None = None

    def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            self._runner.stop()

    @property
    def ready(self) -> bool:
        return (
            self._runner is not None
            and self._runner.ready.is_set()
            and (self._monitor is None or self._monitor.is_up)
        )

    async def wait_ready(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.ready and not self._stopping.is_set():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return self.ready

    def readiness(self) -> dict[str, Any]:
        return {"ok": self.ready, "consuming": self._runner is not None and self._runner.ready.is_set()}

    async def _until_broker_answers(self, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """`attempt()`, tried again with back-off while the broker is unreachable: a worker may
        start before the broker, or the broker may die while the worker starts. Logged once;
        None when the worker is stopped meanwhile."""
        pause = _START_RETRY_FIRST_SECONDS
        failures = 0
        # Opening makes topics and connects a producer: a few broker round trips at most.
        bound = 3 * self.settings.kafka_request_timeout_ms / 1000
        while not self._stopping.is_set():
            try:
                result = await asyncio.wait_for(attempt(), bound)
            except (KafkaError, OSError, TimeoutError) as exc:
                if failures == 0:
                    logger.warning(
                        "broker unreachable at start ({}); waiting for it, retrying with back-off",
                        type(exc).__name__,
                    )
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)
                pause = min(pause * 2, _START_RETRY_MAX_SECONDS)
                continue
            if failures:
                logger.info("broker reachable after {} failed attempt(s); starting", failures)
            return result
        return None

    async def run(self) -> None:
        settings = self.settings
        # The worker's runtime (service/runtime.py): every client, closed on shutdown and when
        # start-up fails half-way. The LLM capacity (concurrency cap, rates) is shared with every
        # worker through its Redis client.
        await asyncio.to_thread(load_classifier)  # once per process, before the first request
        async with contextlib.AsyncExitStack() as opened:
            rt = await self._until_broker_answers(
                lambda: opened.enter_async_context(open_runtime(settings, role="worker", llm=self._backend))
            )
            if rt is None:
                logger.info("worker stopped before the broker answered")
                return
            backend, sessions, publisher, store = rt.llm, rt.sessions, rt.publisher, rt.worker_store
            monitor = self._monitor = rt.monitor
            broker_timeout = settings.kafka_request_timeout_ms / 1000

            subscription = Subscription(
                [settings.kafka_topic_requests, settings.kafka_topic_requests_batch],
                group=settings.kafka_consumer_group,
                start="earliest",
                role="worker",
                options=dict(
                    max_poll_records=settings.worker_concurrency,
                    # Tansu answers a fetch only when this wait is over, even if a message arrived
                    # meanwhile (it ignores fetch_min_bytes; measured: a 500 ms wait gave ~240 ms
                    # median delivery), so up to this wait is added to each request reaching an idle
                    # worker (WORKER_FETCH_MAX_WAIT_MS: each halving takes about a quarter of it off
                    # the median, for twice the empty fetches of an idle worker). A Kafka broker
                    # answers as soon as data is there.
                    fetch_max_wait_ms=settings.worker_fetch_max_wait_ms,
                    # Tansu lets a member join after half of this (measured: 10 s -> 5 s, 6 s -> 3 s);
                    # a shorter session also notices a vanished member sooner.
                    session_timeout_ms=settings.kafka_session_timeout_ms,
                    heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 6),
                ),
            )

            async def dead_letter(record: ConsumerRecord, reason: str, detail: str) -> None:
                headers = [
                    ("dlq-reason", reason.encode()),
                    ("dlq-detail", detail[:1000].encode()),
                    ("dlq-source", f"{record.topic}:{record.partition}@{record.offset}".encode()),
                ]
                await publisher.publish_raw(
                    settings.kafka_topic_dead_letter, record.value, record.key, headers
                )

            processor = Processor(settings, backend, sessions, rt.budgets)
            handler = RequestHandler(settings, store, processor, publisher, sessions)
            sweeper = Sweeper(settings, sessions, publisher, monitor)
            runner = self._runner = ConsumerRunner(
                settings,
                subscription,
                RequestEnvelope.from_bytes,
                handler,
                dead_letter=dead_letter,
                concurrency=settings.worker_concurrency,
                commit_interval=settings.worker_commit_interval_ms / 1000,
                shutdown_grace=settings.worker_shutdown_grace_seconds,
                lane=BatchLane(
                    settings.kafka_topic_requests_batch,
                    limit=settings.batch_concurrency,
                    limit_busy=settings.worker_batch_concurrency_busy,
                ),
                on_offsets_regressed=lambda: sweeper.request_recovery(utcnow()),
                on_consuming=lambda consuming: monitoring.WORKER_CONSUMING.set(int(consuming)),
                broker_available=lambda: monitor.is_up,
            )

            async def broker_returned(epoch_started_at: datetime) -> None:
                # The broker may have lost everything: read the re-created topics from their start
                # and publish again every queued row whose message could be gone.
                runner.rewind()
                sweeper.request_recovery(epoch_started_at)

            monitor.on_reset(broker_returned)
            background = [
                asyncio.create_task(sweeper.run(self._stopping)),
                asyncio.create_task(BatchFeeder(settings, sessions, publisher).run(self._stopping)),
                asyncio.create_task(
                    refresh_gauges(
                        sessions, lambda: runner.consumer, settings.metrics_refresh_seconds, self._stopping
                    )
                ),
            ]
            logger.info(
                "worker starting: joining group {} on {} (concurrency {}, backend {})",
                settings.kafka_consumer_group,
                settings.kafka_topic_requests,
                settings.worker_concurrency,
                backend.name,
            )
            try:
                if self._stopping.is_set():
                    runner.stop()
                await runner.run()
            finally:
                self._stopping.set()
                # They may be waiting on a publish to an absent broker: bounded, then cut.
                _done, late = await asyncio.wait(background, timeout=broker_timeout)
                for task in late:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
        logger.info("worker stopped")
