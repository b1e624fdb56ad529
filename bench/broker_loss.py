"""Broker loss, end to end with real processes: api + worker on PostgreSQL and a memory-storage Tansu.

Submits N requests (202 each), kills the broker, keeps it away for --down seconds, restarts it empty
on the same port, and measures: how soon readiness said 503, how long a submit took to be refused
while the broker was away, how many log lines the outage cost, how many requests were lost, how long
after the broker's return the last one became final, and how long SIGTERM took to stop each process
with the broker gone again.

    .venv/bin/python -m bench.broker_loss            # 400 requests, 5 s outage
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from service.db.migrate import upgrade_to_head
from service.messaging.embedded import EmbeddedBroker, free_port

BODY = {
    "kind": "spreadsheet",
    "query_text": "Проанализируй данные продаж и найди тренды",
    "input_range": "A1:B3",
    "category": "analysis",
    "input_data": [["Товар", "Январь"], ["A", 100], ["B", 80]],
}
FINAL = ("completed", "failed", "cancelled", "expired")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _wait(check, timeout: float, interval: float = 0.1) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until `check()` is true, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


async def _status_counts(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM requests WHERE id = ANY($1::uuid[]) GROUP BY status",
        ids,
    )
    return {row["status"]: row["n"] for row in rows}


def _error_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if "| ERROR" in line)


def _spawn(role: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = (logs / f"{role}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "service", role], env=env, stdout=out, stderr=out)


async def _stop(process: subprocess.Popen[bytes], limit: float) -> float | None:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        if time.monotonic() - started > limit:
            process.kill()
            process.wait()
            return None
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def run(args: argparse.Namespace) -> int:
    server_url = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    name = f"gigaoffice_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    broker = EmbeddedBroker()
    processes: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="broker-loss-"))
    try:
        await asyncio.to_thread(upgrade_to_head, database_url)
        broker.start()
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PORT": str(port),
            "LLM_BACKEND": "dryrun",
            "DRYRUN_LATENCY_MS": str(args.latency_ms),
            "WORKER_CONCURRENCY": str(args.concurrency),
            "LOG_LEVEL": "INFO",
            "ALLOW_ANONYMOUS": "true",  # loopback only: the bench calls without an API key
            "ANONYMOUS_REQUESTS_PER_MINUTE": "0",  # 0: no rate limit
        }
        processes.extend(_spawn(role, env, logs) for role in ("api", "worker"))
        api, worker = processes
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def status(path: str) -> int:
                try:
                    return (await client.get(path)).status_code
                except httpx.HTTPError:
                    return 0

            async def api_ready() -> bool:
                return await status("/api/v1/health/ready") == 200

            async def worker_ready() -> bool:
                return "worker ready" in (logs / "worker.log").read_text(errors="replace")

            assert await _wait(api_ready, 120) is not None, "api never ready"
            assert await _wait(worker_ready, 120) is not None, "worker never ready"

            gate = asyncio.Semaphore(50)

            async def submit() -> httpx.Response:
                async with gate:
                    return await client.post("/api/v1/requests", json=BODY)

            responses = await asyncio.gather(*(submit() for _ in range(args.requests)))
            ids = [uuid.UUID(r.json()["id"]) for r in responses if r.status_code == 202]
            conn = await asyncpg.connect(_dsn(database_url))
            at_kill = await _status_counts(conn, ids)
            errors_before = sum(_error_lines(logs / f"{r}.log") for r in ("api", "worker"))

            broker.kill()
            killed = time.monotonic()
            detected = await _wait(lambda: _is(status("/api/v1/health/ready"), 503), 30)
            refused_started = time.monotonic()
            refused = await client.post("/api/v1/requests", json=BODY)
            refused_seconds = time.monotonic() - refused_started
            await asyncio.sleep(max(0.0, args.down - (time.monotonic() - killed)))
            errors_outage = sum(_error_lines(logs / f"{r}.log") for r in ("api", "worker")) - errors_before
            broker.start()
            returned = time.monotonic()

            async def all_final() -> bool:
                counts = await _status_counts(conn, ids)
                return sum(counts.get(s, 0) for s in FINAL) == len(ids)

            to_final = await _wait(all_final, args.deadline, interval=0.25)
            final_counts = await _status_counts(conn, ids)
            await conn.close()

            broker.kill()  # stopping must not depend on the broker
            await asyncio.sleep(1)
            worker_stop = await _stop(worker, 120)
            api_stop = await _stop(api, 120)

        lost = len(ids) - sum(final_counts.get(s, 0) for s in FINAL)
        print(f"requests accepted (202):            {len(ids)} of {args.requests}")
        print(f"at the kill:                        {at_kill}")
        print(f"broker away for:                    {returned - killed:.1f} s")
        print(f"readiness 503 after:                {_fmt(detected)}")
        print(
            f"submit while away:                  {refused.status_code} in {refused_seconds * 1000:.0f} ms,"
            f" Retry-After {refused.headers.get('Retry-After')}"
        )
        print(f"ERROR lines during the outage:      {errors_outage} (api + worker)")
        print(f"final statuses:                     {final_counts}")
        print(f"lost (not final after {args.deadline:.0f} s):       {lost}")
        print(f"all final after broker return:      {_fmt(to_final)}")
        print(f"SIGTERM -> exit, broker gone: worker {_fmt(worker_stop)}, api {_fmt(api_stop)}")
        print(f"logs:                               {logs}")
        return 0 if lost == 0 and len(ids) == args.requests else 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        broker.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _is(status: asyncio.Future[int] | object, wanted: int) -> bool:
    return await status == wanted  # type: ignore[misc]


def _fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_loss", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--down", type=float, default=5.0, help="seconds the broker stays away")
    parser.add_argument("--latency-ms", type=int, default=100, help="dryrun latency per request")
    parser.add_argument("--concurrency", type=int, default=16, help="WORKER_CONCURRENCY")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for all final")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
