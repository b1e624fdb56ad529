"""Kafka plumbing shared by the API and the workers: the producer, topic creation, connection args."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from loguru import logger

from service.config import Settings
from service.errors import ConfigurationError, ServiceUnavailable
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent

if TYPE_CHECKING:
    from service.messaging.monitor import BrokerMonitor


# Closing waits for the broker (flush, leave): not long, it may be gone.
_CLOSE_TIMEOUT_SECONDS = 3.0


def bootstrap_servers(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError(
            "KAFKA_BOOTSTRAP_SERVERS is empty: point it at a broker, or use `python -m service up`, "
            "which starts an embedded one"
        )
    return settings.kafka_bootstrap_servers


def client_args(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": f"{settings.kafka_client_id}-{role}",
        "request_timeout_ms": settings.kafka_request_timeout_ms,
    }


async def ensure_topics(settings: Settings) -> None:
    """Create the request, dead-letter and responses topics if missing (idempotent, safe to race),
    and warn about one that exists with another partition count than KAFKA_TOPIC_PARTITIONS."""
    names = (
        settings.kafka_topic_requests,
        settings.kafka_topic_requests_batch,
        settings.kafka_topic_dead_letter,
        settings.kafka_topic_responses,
    )
    admin = AIOKafkaAdminClient(**client_args(settings, "admin"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.kafka_topic_partitions, settings.kafka_replication_factor)
            for name in names
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
                logger.info("created topics {}", [topic.name for topic in wanted])
            except TopicAlreadyExistsError:
                pass
        present = [name for name in names if name in existing]
        if present:
            await _check_partition_counts(admin, present, settings.kafka_topic_partitions)
    finally:
        await admin.close()


async def _check_partition_counts(admin: AIOKafkaAdminClient, topics: list[str], wanted: int) -> None:
    """A topic someone else made (most often the broker itself, auto-creating it on a client's first
    produce or metadata request) may have another partition count: it still works, but spreads the
    work over other partitions than planned. Say so, with the fix; once per process and topic."""
    try:
        described = await admin.describe_topics(topics)
    except KafkaError:
        return  # only a check: the topics exist, which is what start-up needs
    for topic in described:
        count = len(topic.get("partitions") or ())
        name = topic.get("topic")
        if count and count != wanted and name not in _partition_warnings:
            _partition_warnings.add(name)
            logger.warning(
                "topic {} has {} partition(s), KAFKA_TOPIC_PARTITIONS is {}: it was created elsewhere "
                "(a broker that auto-creates topics does so with its own default). Fix: set "
                "KAFKA_TOPIC_PARTITIONS={} to match, or, with no worker running, delete the topic so the "
                "service creates it again with {} (and disable the broker's auto.create.topics.enable)",
                name,
                count,
                wanted,
                count,
                wanted,
            )


_partition_warnings: set[str] = set()


async def stop_client(client: Any, what: str) -> None:
    """Stop an aiokafka client, bounded (the broker may be gone), and without a traceback.

    With the broker gone, aiokafka's fetcher re-raises the cancellation of its own in-flight fetch
    from `stop()`: that CancelledError is not ours and is swallowed; a cancellation of the calling
    task itself is passed on."""
    try:
        await asyncio.wait_for(client.stop(), _CLOSE_TIMEOUT_SECONDS)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        logger.info("{} stopped with the broker away", what)
    except Exception as exc:
        logger.warning("{} did not stop cleanly ({}); dropped", what, type(exc).__name__)


def queue_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The request queue is unavailable; the request was not accepted. Please retry.",
        code="queue_unavailable",
    )


def _log_lost_event(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        logger.warning("a status event was not delivered to the broker: {}", delivery.exception())


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Stable partition per request id, by CRC-32 (in C) instead of aiokafka's pure-Python murmur2.
    Only this service reads the topic, so Java-client partition compatibility does not matter."""
    partitions = all_partitions if key is not None else (available or all_partitions)
    return sorted(partitions)[zlib.crc32(key or b"") % len(partitions)]


class RequestPublisher:
    """The API's (and the sweeper's) producer. Every send waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings, monitor: BrokerMonitor | None = None) -> None:
        self._settings = settings
        self.monitor = monitor
        # No idempotent/transactional producer: Tansu lacks InitProducerId, and exactly-once
        # effects come from the database claim instead.
        self._producer = AIOKafkaProducer(
            **client_args(settings, "producer"),
            acks="all",
            enable_idempotence=False,
            linger_ms=0,  # sends arriving while one is in flight still batch; lingering cost 1 ms a submit
            partitioner=key_partitioner,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def close(self) -> None:
        # Flushing waits for the broker; without one, give up after a request timeout.
        try:
            await asyncio.wait_for(self._producer.stop(), _CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("producer did not flush before shutdown (broker unavailable)")

    def require_available(self) -> None:
        """Raise ServiceUnavailable at once while the broker is known to be down."""
        if self.monitor is not None:
            self.monitor.require_up()

    async def publish(self, envelope: RequestEnvelope, topic: str | None = None) -> None:
        self.require_available()
        try:
            await self._producer.send_and_wait(
                topic or self._settings.kafka_topic_requests, envelope.to_bytes(), key=envelope.key
            )
        except KafkaError as exc:
            if self.monitor is not None:
                self.monitor.report_failure(exc)
            raise queue_unavailable() from exc

    async def publish_many(self, envelopes: list[RequestEnvelope], topic: str) -> None:
        """Many envelopes at once: all sends are queued before waiting, so they share produce batches."""
        self.require_available()
        try:
            pending = [await self._producer.send(topic, e.to_bytes(), key=e.key) for e in envelopes]
            await asyncio.gather(*pending)
        except KafkaError as exc:
            if self.monitor is not None:
                self.monitor.report_failure(exc)
            raise queue_unavailable() from exc

    async def publish_event(self, event: StatusEvent) -> None:
        """Hand a status event to the producer without waiting for the broker's acknowledgement.

        The state it reports is already committed, and nobody depends on the event alone: waiters
        re-read the row at their deadline, the webhook dispatcher's log is the durable part. So a
        lost event costs a waiter its remaining wait, never a result; not waiting keeps the
        broker's round trip off the worker's and the API's paths."""
        try:
            delivery = await self._producer.send(
                self._settings.kafka_topic_responses, event.to_bytes(), key=event.key
            )
        except KafkaError as exc:
            logger.warning("status event for {} not published: {}", event.request_id, exc)
            return
        delivery.add_done_callback(_log_lost_event)

    async def publish_events(self, states: Iterable[Any]) -> None:
        for state in states:
            await self.publish_event(StatusEvent.of(state))

    async def partitions(self) -> set[int]:
        """Partitions of the request topic, from the broker's metadata: a cheap reachability probe."""
        return set(await self._producer.partitions_for(self._settings.kafka_topic_requests))

    async def publish_raw(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)
