"""Broker loss: a broker that comes back empty (memory-storage Tansu killed and restarted on its
port: no topics, offsets or group state) loses nothing; health and submits say so while it is away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from service.config import Settings
from service.messaging.embedded import EmbeddedBroker
from service.messaging.kafka import ensure_topics
from service.pipeline.classify_model import warm_up as train_classifier
from tests.support import SEED_EXAMPLE, RunningService, captured_logs, make_settings, running_service

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        await asyncio.sleep(0.1)


async def _readiness(svc: RunningService) -> int:
    return (await svc.client.get("/api/v1/health/ready")).status_code


async def _submit_all(svc: RunningService, count: int) -> list[str]:
    responses = await asyncio.gather(*(svc.submit(SPREADSHEET) for _ in range(count)))
    assert [r.status_code for r in responses] == [202] * count
    return [r.json()["id"] for r in responses]


async def _all_completed_once(svc: RunningService, ids: list[str], calls_before: int) -> None:
    finals = [await svc.wait_final(request_id, timeout=120) for request_id in ids]
    assert [f["status"] for f in finals] == ["completed"] * len(ids)
    # Exactly once in effect: one LLM call per request, however often its message was published.
    assert len(svc.backend.calls) - calls_before == len(ids)


async def test_a_broker_that_comes_back_empty_loses_nothing(own_postgres_url: str) -> None:
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = make_settings(
            own_postgres_url,
            broker.bootstrap_servers,
            # A small, slow worker: most messages are still in the broker when it dies.
            worker_concurrency=4,
            dryrun_latency_ms=200,
            broker_probe_interval_seconds=0.3,
        )
        async with running_service(settings) as svc:
            assert svc.worker is not None
            assert await svc.worker.wait_ready(60), "the worker never joined its group"
            ids = await _submit_all(svc, 40)

            broker.kill()
            await _until(lambda: _readiness_is(svc, 503), 30, "reported down")
            assert (await svc.client.get("/api/v1/health/live")).status_code == 200
            refused = await svc.submit(SPREADSHEET)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            assert refused.json()["error"]["code"] == "queue_unavailable"
            health = (await svc.client.get("/api/v1/health")).json()
            assert health["components"]["broker"]["ok"] is False

            broker.start()  # same port, empty
            await _until(lambda: _readiness_is(svc, 200), 60, "ready again")
            await _all_completed_once(svc, ids, calls_before=0)
            # And the pipeline goes on with new work.
            await _all_completed_once(svc, await _submit_all(svc, 5), calls_before=len(ids))
    finally:
        broker.stop()


async def _readiness_is(svc: RunningService, status: int) -> bool:
    return await _readiness(svc) == status


async def test_a_restart_between_two_probes_is_noticed(own_postgres_url: str) -> None:
    """The broker restarts between two probes, and the topics are back (re-created by someone else,
    or by the broker itself on a metadata request) before the monitor looks again: the dropped
    connection still tells it the broker may have come back empty."""
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = make_settings(
            own_postgres_url,
            broker.bootstrap_servers,
            worker_concurrency=2,
            dryrun_latency_ms=300,
            broker_probe_interval_seconds=3,
            kafka_topic_partitions=1,
        )
        async with running_service(settings) as svc:
            assert svc.worker is not None
            assert await svc.worker.wait_ready(60)
            warmup = await _submit_all(svc, 3)  # moves the partition's offsets past zero
            await _all_completed_once(svc, warmup, calls_before=0)
            ids = await _submit_all(svc, 20)
            broker.kill()
            broker.start()
            await ensure_topics(settings)
            # New submits land at offsets 0, 1, … below what the consumer already handled.
            later = await _submit_all(svc, 3)
            await _all_completed_once(svc, ids + later, calls_before=len(warmup))
    finally:
        broker.stop()


def _start_scenario_settings(url: str, bootstrap: str) -> Settings:
    return make_settings(
        url,
        bootstrap,
        worker_concurrency=4,
        dryrun_latency_ms=50,
        broker_probe_interval_seconds=0.3,
        # The recovery of a worker that never saw the broker go: rows queued this long on a
        # partition without lag (an empty re-created topic has none) are published again.
        requeue_after_seconds=3,
        sweep_interval_seconds=1,
    )


async def test_a_broker_lost_while_the_worker_starts_loses_nothing(own_postgres_url: str) -> None:
    """The broker is gone while a worker starts and comes back empty: the worker waits for it
    (logged once) instead of dying, and the requests accepted before all end final."""
    await asyncio.to_thread(train_classifier)  # the worker's own start then takes moments, not seconds
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = _start_scenario_settings(own_postgres_url, broker.bootstrap_servers)
        async with running_service(settings, with_worker=False) as svc:
            ids = await _submit_all(svc, 20)
            with captured_logs() as logs:
                broker.kill()
                svc.start_worker()
                await asyncio.sleep(4)
                assert svc.worker_task is not None and not svc.worker_task.done(), "the worker gave up"
                broker.start()  # same port, empty
                await _all_completed_once(svc, ids, calls_before=0)
            assert sum("broker unreachable at start" in line for line in logs) == 1
    finally:
        broker.stop()


async def test_a_worker_started_after_the_broker_came_back_empty_finds_the_stranded_rows(
    own_postgres_url: str,
) -> None:
    """The worker dies while the broker is away; the broker comes back empty; a new worker, which
    never saw the loss, still publishes the stranded requests again (nobody has to step in)."""
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = _start_scenario_settings(own_postgres_url, broker.bootstrap_servers)
        settings = settings.model_copy(update={"dryrun_latency_ms": 400})
        async with running_service(settings) as svc:
            assert svc.worker is not None
            assert await svc.worker.wait_ready(60)
            ids = await _submit_all(svc, 20)
            broker.kill()
            await asyncio.sleep(1)
            await svc.stop_worker()  # stopped while the broker is away: nothing it held is committed
            broker.start()  # empty
            await _until(lambda: _readiness_is(svc, 200), 60, "ready again")
            calls_before = len(svc.backend.calls)
            svc.start_worker()
            finals = [await svc.wait_final(request_id, timeout=120) for request_id in ids]
            assert [f["status"] for f in finals] == ["completed"] * len(ids)
            assert len(svc.backend.calls) - calls_before <= len(ids)
    finally:
        broker.stop()
