"""Knows whether the broker is usable, and notices when it comes back empty.

Every process that talks to the broker runs one monitor. It asks the broker for its metadata every
BROKER_PROBE_INTERVAL_SECONDS (one small request on a connection of its own, bounded by
BROKER_PROBE_TIMEOUT_SECONDS) and keeps three facts: is the broker reachable, since when, and does it
have our topics.

Why topics matter: a memory-storage broker (Tansu) that restarts, a disaster restore or a topic
re-creation leaves a broker without our topics, offsets or group state. Tansu then even acknowledges
produce requests to the missing topic and drops them, so a reachable broker is not yet a usable one.
When the monitor sees the broker return after an outage, or sees a topic missing, it re-creates the
topics and only then reports the broker up again, with a new *epoch*: every message published before
that moment may be gone. Listeners (the worker) get the epoch's start time and re-join the group and
re-publish what may have been lost; the database claim makes duplicates harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiokafka.client import AIOKafkaClient
from loguru import logger

from service import monitoring
from service.config import Settings
from service.db.models import utcnow
from service.logging import throttled
from service.messaging.kafka import client_args, ensure_topics, queue_unavailable

ResetListener = Callable[[datetime], Awaitable[None]]


class BrokerMonitor:
    def __init__(self, settings: Settings, role: str) -> None:
        self._settings = settings
        self._role = role
        self._interval = settings.broker_probe_interval_seconds
        self._timeout = settings.broker_probe_timeout_seconds
        self._wanted = {
            settings.kafka_topic_requests,
            settings.kafka_topic_requests_batch,
            settings.kafka_topic_dead_letter,
            settings.kafka_topic_responses,
        }
        self._client: AIOKafkaClient | None = None
        self._connections: dict[Any, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[ResetListener] = []
        self._up = True  # start-up created the topics, so the broker was usable a moment ago
        self._changed_at = time.monotonic()
        self._last_error: str | None = None
        self.epoch = 0
        self.epoch_started_at: datetime = utcnow()

    # --- what others read --------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._up

    def require_up(self) -> None:
        """Fail fast while the broker is known to be down: a submit then gets 503 at once instead
        of waiting KAFKA_REQUEST_TIMEOUT_MS for the producer to give up."""
        if not self._up:
            raise queue_unavailable()

    def report(self) -> dict[str, Any]:
        seconds = round(time.monotonic() - self._changed_at, 1)
        report: dict[str, Any] = {"ok": self._up, "epoch": self.epoch}
        report["up_for_seconds" if self._up else "down_for_seconds"] = seconds
        if not self._up and self._last_error:
            report["detail"] = self._last_error
        return report

    def on_reset(self, listener: ResetListener) -> None:
        """`listener(epoch_started_at)` runs after the broker came back (topics exist again)."""
        self._listeners.append(listener)

    def report_failure(self, exc: BaseException) -> None:
        """A client saw the broker fail (e.g. a publish): believe it until the next probe says
        otherwise, so the next submits fail fast."""
        self._mark_down(type(exc).__name__)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        monitoring.BROKER_UP.labels(self._role).set(1 if self._up else 0)
        self._task = asyncio.create_task(self._run(), name=f"broker-monitor-{self._role}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close_client()

    async def _run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self._interval)

    # --- probing -----------------------------------------------------------------------------------

    async def probe_once(self) -> None:
        try:
            topics = await asyncio.wait_for(self._topics(), self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._close_client()  # a fresh connection next time, not a half-dead one
            self._mark_down(type(exc).__name__)
            return
        missing = self._wanted - topics
        if not missing and self._up:
            return
        if missing:
            throttled("broker-topics-missing").warning(
                "broker is missing topics {}: it lost its state; re-creating them", sorted(missing)
            )
            try:
                await asyncio.wait_for(ensure_topics(self._settings), self._timeout * 3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._mark_down(f"topic creation failed: {type(exc).__name__}")
                return
        await self._start_epoch()

    async def _topics(self) -> set[str]:
        if self._client is None:
            client = AIOKafkaClient(**client_args(self._settings, f"{self._role}-monitor"))
            self._client = client
            await client.bootstrap()
        elif self._connections_changed(self._client):
            # The broker closed our connection since the last probe: it restarted (or the network
            # failed) between two probes. It may have come back empty although it answers now.
            self._mark_down("connection lost")
        metadata = await self._client.fetch_all_metadata()
        self._connections = self._connection_ids(self._client)
        return set(metadata.topics())

    @staticmethod
    def _connection_ids(client: AIOKafkaClient) -> dict[Any, int]:
        # aiokafka drops a closed connection from this table and reconnects silently: the table is
        # the only place a drop shows.
        return {key: id(conn) for key, conn in getattr(client, "_conns", {}).items() if conn.connected()}

    def _connections_changed(self, client: AIOKafkaClient) -> bool:
        now = self._connection_ids(client)
        return any(now.get(key) != conn_id for key, conn_id in self._connections.items())

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._connections = {}
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self._timeout)

    def _mark_down(self, reason: str) -> None:
        self._last_error = reason
        if self._up:
            self._up = False
            monitoring.BROKER_UP.labels(self._role).set(0)
            self._changed_at = time.monotonic()
            logger.error("broker unavailable ({}); submits get 503 until it is back", reason)

    async def _start_epoch(self) -> None:
        down_for = time.monotonic() - self._changed_at
        was_down = not self._up
        self.epoch += 1
        self.epoch_started_at = utcnow()
        self._up = True
        monitoring.BROKER_UP.labels(self._role).set(1)
        self._changed_at = time.monotonic()
        self._last_error = None
        if was_down:
            logger.warning("broker back after {:.1f} s (epoch {})", down_for, self.epoch)
        for listener in self._listeners:
            try:
                await listener(self.epoch_started_at)
            except Exception:
                logger.exception("broker recovery step failed")
