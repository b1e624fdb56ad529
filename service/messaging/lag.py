"""Which partitions of a topic the worker group has fully worked off (committed up to the end).

The sweeper's test for "lost", as opposed to "waiting its turn": a queued row whose message sits
on a partition the group has committed to the end was delivered and finished without being
claimed, or was never there (the broker lost it, the API died before publishing). A row on a
partition with lag is left alone, however long the backlog.
"""

from __future__ import annotations

import uuid
import zlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from loguru import logger

from service.config import Settings
from service.messaging.kafka import client_args


def partition_of(request_id: uuid.UUID, partitions: int) -> int:
    """The partition the producer's key partitioner sends a request to (see kafka.key_partitioner)."""
    return zlib.crc32(str(request_id).encode()) % partitions


async def drained_partitions(settings: Settings, topic: str) -> tuple[int, set[int]] | None:
    """(partition count, partitions with no lag), or None when the broker cannot tell."""
    consumer = AIOKafkaConsumer(
        **client_args(settings, "sweeper"), group_id=settings.kafka_consumer_group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        await consumer.topics()  # loads the metadata
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        if not numbers:
            return None
        tps = [TopicPartition(topic, number) for number in numbers]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        drained = set()
        for tp in tps:
            committed = await consumer.committed(tp)
            if (committed if committed is not None else starts[tp]) >= ends[tp]:
                drained.add(tp.partition)
        return len(numbers), drained
    except KafkaError as exc:
        logger.warning("could not read the lag of {} ({}); sweeping by age only", topic, exc)
        return None
    finally:
        await consumer.stop()


async def group_figures(settings: Settings, topics: list[str], dead_letter: str) -> dict[str, int] | None:
    """The worker group's lag per topic (end offsets minus committed ones, summed over partitions),
    and under `dead_letter` the number of records that topic holds; None when the broker cannot tell.
    The operator console's overview shows these."""
    consumer = AIOKafkaConsumer(
        **client_args(settings, "console"), group_id=settings.kafka_consumer_group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        await consumer.topics()  # loads the metadata
        figures: dict[str, int] = {}
        for topic in [*topics, dead_letter]:
            tps = [TopicPartition(topic, n) for n in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                figures[topic] = 0
                continue
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            if topic == dead_letter:
                figures[topic] = sum(ends[tp] - starts[tp] for tp in tps)
                continue
            lag = 0
            for tp in tps:
                committed = await consumer.committed(tp)
                lag += ends[tp] - (committed if committed is not None else starts[tp])
            figures[topic] = max(0, lag)
        return figures
    except KafkaError as exc:
        logger.warning("could not read the consumer lag ({})", exc)
        return None
    finally:
        await consumer.stop()
