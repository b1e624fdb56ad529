"""The worker's periodic gauges: queue depth per lane (database) and consumer lag (broker)."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring
from service.db import requests_repo as repo


async def refresh_gauges(
    sessions: async_sessionmaker[AsyncSession],
    consumer: AIOKafkaConsumer,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    while not stopping.is_set():
        try:
            async with sessions() as session:
                for lane, depth in (await repo.queued_by_lane(session)).items():
                    monitoring.QUEUE_DEPTH.labels(lane).set(depth)
            lag: dict[str, int] = {}
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - await consumer.position(tp))
            for topic, behind in lag.items():
                monitoring.CONSUMER_LAG.labels(topic).set(behind)
        except Exception as exc:  # a gauge is not worth a worker: try again next time
            logger.warning("refreshing gauges failed: {}", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
