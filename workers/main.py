"""Worker process assembly: opens clients, runs the consumer runner and the sweeper, closes all."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from loguru import logger

from service.callers.budgets import Budgets
from service.config import Settings
from service.db.session import create_engine, create_session_factory
from service.db.worker_store import open_worker_store
from service.llm.base import LLMBackend
from service.messaging.kafka import RequestPublisher, client_args, ensure_topics
from service.pipeline.classify_model import warm_up as train_classifier
from service.redis_client import open_redis
from service.services.processing import Processor
from workers.feeder import BatchFeeder
from workers.gauges import refresh_gauges
from workers.handlers import RequestHandler
from workers.runner import ConsumerRunner
from workers.sweeper import Sweeper


class Worker:
    """One consumer-group member. `run()` returns after `stop()` once in-flight work is settled."""

    def __init__(self, settings: Settings, backend: LLMBackend | None = None) -> None:
        self.settings = settings
        self._backend = backend
        self._stopping = asyncio.Event()
        self._runner: ConsumerRunner | None = None

    def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            self._runner.stop()

    async def run(self) -> None:
        settings = self.settings
        # Every client is closed on shutdown, and also when start-up fails half-way.
        async with contextlib.AsyncExitStack() as opened:
            if self._backend is None:
                from service.llm.registry import build_backend

                # The LLM capacity (concurrency cap, rates) is shared with every worker through it.
                redis = open_redis(settings)
                if redis is not None:
                    opened.push_async_callback(redis.aclose)
                self._backend = build_backend(settings, redis)
            backend = self._backend
            engine = create_engine(settings)
            opened.push_async_callback(engine.dispose)
            sessions = create_session_factory(engine)
            await ensure_topics(settings)
            await asyncio.to_thread(train_classifier)  # once per process, before the first request
            await backend.start()
            opened.push_async_callback(backend.close)
            publisher = RequestPublisher(settings)
            await publisher.start()
            opened.push_async_callback(publisher.close)
            store = await open_worker_store(settings, engine)
            opened.push_async_callback(store.close)
            consumer = AIOKafkaConsumer(
                **client_args(settings, "worker"),
                group_id=settings.kafka_consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=settings.worker_concurrency,
                # Tansu answers a fetch only when this wait is over, even if a message arrived
                # meanwhile (it ignores fetch_min_bytes; measured: a 500 ms wait gave ~240 ms median
                # delivery), so up to this wait is added to each request reaching an idle worker.
                # 10 ms rather than 20 took ~4 ms off the median; it costs a few more empty fetches
                # per second. A Kafka broker answers as soon as data is there either way.
                fetch_max_wait_ms=10,
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

            processor = Processor(settings, backend, sessions, Budgets(settings, sessions))
            handler = RequestHandler(settings, store, processor, publisher)
            self._runner = ConsumerRunner(
                consumer,
                [settings.kafka_topic_requests, settings.kafka_topic_requests_batch],
                handler,
                dead_letter,
                concurrency=settings.worker_concurrency,
                commit_interval=settings.worker_commit_interval_ms / 1000,
                shutdown_grace=settings.worker_shutdown_grace_seconds,
                batch_topic=settings.kafka_topic_requests_batch,
                batch_limit=settings.batch_concurrency,
                batch_limit_busy=settings.worker_batch_concurrency_busy,
            )
            await consumer.start()
            opened.push_async_callback(consumer.stop)
            sweeper = asyncio.create_task(Sweeper(settings, sessions, publisher).run(self._stopping))
            feeder = asyncio.create_task(BatchFeeder(settings, sessions, publisher).run(self._stopping))
            gauges = asyncio.create_task(
                refresh_gauges(sessions, consumer, settings.metrics_refresh_seconds, self._stopping)
            )
            logger.info(
                "worker consuming {} as group {} (concurrency {}, backend {})",
                settings.kafka_topic_requests,
                settings.kafka_consumer_group,
                settings.worker_concurrency,
                backend.name,
            )
            try:
                if self._stopping.is_set():
                    self._runner.stop()
                await self._runner.run()
            finally:
                self._stopping.set()
                with contextlib.suppress(Exception):
                    await sweeper
                with contextlib.suppress(Exception):
                    await gauges
                with contextlib.suppress(Exception):
                    await feeder
        logger.info("worker stopped")
