"""The worker's periodic gauges: queue depth per lane (database) and consumer lag (broker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring
from service.db import request_stats_repo as stats_repo
from service.logging import throttled

# A position the consumer does not know yet is fetched from the broker, which may be away.
_POSITION_TIMEOUT_SECONDS = 1.0


async def refresh_gauges(
    sessions: async_sessionmaker[AsyncSession],
    current_consumer: Callable[[], AIOKafkaConsumer | None],
    interval: float,
    stopping: asyncio.Event,
) -> None:
    while not stopping.is_set():
        try:
            async with sessions() as session:
                for lane, depth in (await stats_repo.queued_by_lane(session)).items():
                    monitoring.QUEUE_DEPTH.labels(lane).set(depth)
            lag: dict[str, int] = {}
            consumer = current_consumer()  # None while the runner opens it
            for tp in consumer.assignment() if consumer is not None else set():
                assert consumer is not None
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    position = await asyncio.wait_for(consumer.position(tp), _POSITION_TIMEOUT_SECONDS)
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
            for topic, behind in lag.items():
                monitoring.CONSUMER_LAG.labels(topic).set(behind)
        except Exception as exc:  # a gauge is not worth a worker: try again next time
            throttled("gauges").warning("refreshing gauges failed: {}", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
