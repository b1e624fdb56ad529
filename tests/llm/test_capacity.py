"""Backend capacity shared by all workers: the concurrency cap and the rates hold across processes
through Redis, leases of dead workers expire, and an unreachable Redis degrades to per-process limits."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.llm.capacity import SharedCapacity, capacity_from_settings
from service.llm.openai_compat import OpenAIBackend
from service.llm.resilience import ResilientBackend, RetryPolicy
from tests.llm.conftest import ask, openai_settings, started
from tests.llm.test_resilience import arrivals, assert_window_holds
from tests.peers.openai_server import OpenAIPeer

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    """Our own keys on the shared Redis server: other tests use it at the same time."""
    return f"test-capacity-{uuid.uuid4().hex}"


@pytest.fixture
async def redis_clients() -> AsyncIterator[list[Redis]]:
    """Separate clients (separate connections), one per simulated worker."""
    clients = [Redis.from_url(REDIS_URL) for _ in range(2)]
    yield clients
    for client in clients:
        await client.aclose()


async def run_workers(
    peer: OpenAIPeer, extra_env: dict[str, str], *, processes: int, calls: int
) -> list[Any]:
    """Start `processes` worker-like processes, release them together, return their summaries."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_", "GIGACHAT_", "REDIS_"))
    }
    env |= {
        "PYTHONPATH": str(REPO),
        "LLM_BACKEND": "openai",
        "OPENAI_BASE_URL": peer.base_url,
        "OPENAI_API_KEY": peer.api_key,
        "CAPACITY_CLIENT_CALLS": str(calls),
        **extra_env,
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.llm.capacity_client",
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    async with asyncio.timeout(120):
        for worker in workers:
            assert worker.stdout is not None
            assert (await worker.stdout.readline()).strip() == b"ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = [await worker.communicate() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    return [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs]


async def test_two_worker_processes_never_exceed_the_shared_cap(
    openai_upstream: OpenAIPeer, prefix: str
) -> None:
    openai_upstream.faults.delay_seconds = 0.4
    shared = {"REDIS_URL": REDIS_URL, "LLM_MAX_CONCURRENCY": "3", "LLM_CAPACITY_KEY_PREFIX": prefix}
    summaries = await run_workers(openai_upstream, shared, processes=2, calls=8)

    assert summaries == [{"answered": 8, "failed": []}] * 2
    assert len(arrivals(openai_upstream)) == 16
    assert openai_upstream.max_in_flight == 3

    # The same two processes without Redis: each holds the cap alone, together they exceed it.
    openai_upstream.reset()
    openai_upstream.faults.delay_seconds = 0.4
    await run_workers(openai_upstream, {"LLM_MAX_CONCURRENCY": "3"}, processes=2, calls=8)
    assert openai_upstream.max_in_flight > 3


def shared_backend(peer: OpenAIPeer, capacity: SharedCapacity) -> ResilientBackend:
    return ResilientBackend(
        OpenAIBackend(openai_settings(peer)), policy=RetryPolicy(), limiters={"openai": capacity}
    )


@pytest.mark.parametrize("budget", ["requests", "tokens"])
async def test_the_rates_hold_across_limiters_with_their_own_connections(
    openai_upstream: OpenAIPeer, redis_clients: list[Redis], prefix: str, budget: str
) -> None:
    # Each prompt is estimated at 18 tokens and the peer reports 18 used: four fit in 72.
    limits = {"max_requests": 4} if budget == "requests" else {"max_tokens": 72}
    backends = [
        shared_backend(openai_upstream, SharedCapacity(client, prefix, window_seconds=1.0, **limits))
        for client in redis_clients
    ]
    async with started(backends[0]), started(backends[1]):
        answers = await asyncio.gather(*(backends[i % 2].chat(ask("x" * 56)) for i in range(12)))
    assert len(answers) == 12
    assert_window_holds(arrivals(openai_upstream), budget=4, window=1.0)


async def test_a_running_call_keeps_its_slot_and_a_dead_workers_slot_comes_back(
    redis_clients: list[Redis], prefix: str
) -> None:
    lease = 0.6
    first, second = (
        SharedCapacity(client, prefix, max_concurrency=1, lease_seconds=lease) for client in redis_clients
    )
    loop = asyncio.get_running_loop()

    # A call running for several leases is renewed: nobody else gets the slot meanwhile.
    async def long_call() -> float:
        async with first.reserve(1):
            await asyncio.sleep(lease * 3)
            return loop.time()

    holder = asyncio.create_task(long_call())
    await asyncio.sleep(0.1)
    async with second.reserve(1):
        granted = loop.time()
    assert granted >= await holder

    # A worker that dies holding a slot never releases it: its lease expires.
    await first._acquire(1)
    taken = loop.time()
    async with asyncio.timeout(30), second.reserve(1):
        granted = loop.time()
    assert granted - taken >= lease * 0.8


async def test_unreachable_redis_degrades_to_per_process_limits_and_says_so_once(
    openai_upstream: OpenAIPeer, captured_logs: list[str], prefix: str
) -> None:
    openai_upstream.faults.delay_seconds = 0.2
    settings = openai_settings(openai_upstream, llm_max_concurrency=2, llm_capacity_key_prefix=prefix)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1.0)
    try:
        capacity = capacity_from_settings(settings, "openai", dead)
        assert isinstance(capacity, SharedCapacity)
        backend = ResilientBackend(
            OpenAIBackend(settings), policy=RetryPolicy(), limiters={"openai": capacity}
        )
        async with started(backend):
            answers = await asyncio.gather(*(backend.chat(ask(f"q{i}")) for i in range(8)))
    finally:
        await dead.aclose()
    assert len(answers) == 8
    assert openai_upstream.max_in_flight == 2
    warnings = [line for line in captured_logs if "Redis unreachable" in line]
    assert len(warnings) == 1, warnings
