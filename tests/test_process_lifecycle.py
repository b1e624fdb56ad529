"""Whole processes under signals and broker loss: `up` supervises its embedded broker and stops on
SIGTERM; a worker stops on SIGTERM with its broker gone; repeated log lines are bounded."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from loguru import logger

from service.config import Settings
from service.logging import RepeatLimiter, configure_logging
from service.messaging.embedded import EmbeddedBroker, free_port
from tests.support import SEED_EXAMPLE, make_settings

ROOT = Path(__file__).resolve().parents[1]


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    argv = [sys.executable, "-m", "service", command]
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _eventually(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        await asyncio.sleep(0.2)


async def _exit_code(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return await asyncio.to_thread(process.wait, timeout)
    except subprocess.TimeoutExpired:
        return None


async def test_up_restarts_its_broker_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'up.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "PORT": str(port),
        "LLM_BACKEND": "dryrun",
        "LOG_LEVEL": "INFO",
        "REDIS_URL": "",
    }
    log = tmp_path / "up.log"
    up = _spawn("up", env, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def ready() -> bool:
                try:
                    response = await client.get("/api/v1/health/ready")
                except httpx.HTTPError:
                    return False
                return response.status_code == 200 and response.json()["components"]["worker"]["ok"]

            await _eventually(ready, 120, "ready")
            brokers = _children(up.pid)
            assert len(brokers) == 1, brokers
            os.kill(brokers[0], signal.SIGKILL)
            await _eventually(
                lambda: _true("restarting it" in log.read_text(errors="replace")), 30, "restarted"
            )
            await _eventually(ready, 120, "ready again")
            assert brokers[0] not in _children(up.pid)  # reaped, not a zombie
            submitted = await client.post("/api/v1/requests", json={"kind": "spreadsheet", **SEED_EXAMPLE})
            assert submitted.status_code == 202
            request_id = submitted.json()["id"]

            async def completed() -> bool:
                body = (await client.get(f"/api/v1/requests/{request_id}")).json()
                return bool(body["status"] == "completed")

            await _eventually(completed, 60, "completed")
        new_broker = _children(up.pid)
        up.send_signal(signal.SIGTERM)
        assert await _exit_code(up, 90) == 0, log.read_text(errors="replace")[-3000:]
        # A clean stop says so in a line, never in a traceback (uvicorn's, aiokafka's CancelledError).
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
        assert not any(_exists(pid) for pid in new_broker)  # stopped and reaped
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


async def test_worker_stops_on_sigterm_with_its_broker_gone(postgres_url: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.start()
    settings = make_settings(postgres_url, broker.bootstrap_servers)
    env = {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_TOPIC_REQUESTS": settings.kafka_topic_requests,
        "KAFKA_TOPIC_DEAD_LETTER": settings.kafka_topic_dead_letter,
        "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "2",
        "REDIS_URL": "",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "2",
    }
    log = tmp_path / "worker.log"
    worker = _spawn("worker", env, log)
    try:
        await _eventually(lambda: _true("worker ready" in log.read_text(errors="replace")), 120, "ready")
        broker.kill()
        await asyncio.sleep(3)  # long enough for every client to be in the middle of retrying
        worker.send_signal(signal.SIGTERM)
        # Far less than the 20 s + forever it took before; generous for a loaded machine.
        assert await _exit_code(worker, 60) == 0, log.read_text(errors="replace")[-3000:]
        text = log.read_text(errors="replace")
        assert "not stopped within" not in text, text[-3000:]  # it stopped by itself, not cut short
        assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
        assert text.count("Unable connect to node") <= 3, "aiokafka's connection errors were not bounded"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        broker.stop()


async def _true(value: bool) -> bool:
    return value


def test_repeated_lines_are_bounded_with_a_count() -> None:
    limiter = RepeatLimiter(interval=3600)
    assert limiter.admit("a") == 0
    assert [limiter.admit("a") for _ in range(5)] == [None] * 5
    assert limiter.admit("b") == 0  # another condition is not held back
    limiter.interval = 0
    assert limiter.admit("a") == 5  # the next line after the interval carries the count


def test_a_flood_from_a_library_logger_is_bounded() -> None:
    lines: list[str] = []
    configure_logging(Settings(_env_file=None, log_repeat_interval_seconds=3600))  # type: ignore[call-arg]
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        flood = logging.getLogger("aiokafka.client")
        for attempt in range(200):
            flood.error("Unable connect to node with id %s: %s", 111, f"refused #{attempt}")
        flood.error("Unable to update metadata from %s", [111])
    finally:
        logger.remove(sink)
    assert len(lines) == 2, lines
