"""Load benchmark of API + worker: submits, status reads, pipeline overhead, 200 ms throughput, RSS.

    python -m bench.load                    # starts PG database, broker, api and worker itself
    python -m bench.load --quick            # smaller counts: a smoke run
    python -m bench.load --phases submit,status_reads
    python -m bench.load --url http://127.0.0.1:8000 --pid api:1234 --pid worker:5678

Prints one JSON object (also written to bench/results/latest.json) and exits 1 when a target is
missed (2 on a setup error). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.httpclient import Connection, build_request, parse_loopback_url
from service.schemas.requests import SEED_EXAMPLE

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"

PHASES = ("submit", "status_reads", "overhead", "throughput_200ms")
FINAL = frozenset({"completed", "failed", "cancelled", "expired"})
PAYLOAD = {"kind": "spreadsheet", **SEED_EXAMPLE}
SUBMIT_PATH = "/api/v1/requests"

TARGETS = {
    # name: (section, key, comparison, target)
    "submit_rps": ("submit", "rps", ">=", 1100.0),
    "submit_non_202": ("submit", "non_202", "<=", 0),
    "status_reads_rps": ("status_reads", "rps", ">=", 1600.0),
    "overhead_p50_ms": ("overhead", "p50_ms", "<=", 10.0),
    "overhead_p99_ms": ("overhead", "p99_ms", "<=", 50.0),
    "completed_per_s_200ms": ("throughput_200ms", "completed_per_s", ">=", 400.0),
    "api_rss_mb": ("memory_mb", "api_max", "<=", 120.0),
    "worker_rss_mb": ("memory_mb", "worker_max", "<=", 120.0),
}

COUNTS = {
    #                 full    quick
    "warmup": (300, 100),
    "submit": (6000, 800),
    "status_reads": (8000, 1000),
    "overhead": (800, 150),
    "throughput_200ms": (4000, 600),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# statistics


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def latency_summary(latencies_s: list[float]) -> dict[str, float | None]:
    values = sorted(latencies_s)

    def ms(q: float) -> float | None:
        v = percentile(values, q)
        return None if v is None else round(v * 1000, 2)

    return {
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": None if not values else round(values[-1] * 1000, 2),
    }


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ------------------------------------------------------------------------------------------------
# process resources: RSS sampling and CPU accounting


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss_mb(pid: int) -> float | None:
    total = 0
    procs = _tree(pid)
    if not procs:
        return None
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / (1024 * 1024)


def tree_cpu_s(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of each process in the trees of `pids`, by pid."""
    out: dict[int, float] = {}
    for pid in pids:
        for p in _tree(pid):
            if p.pid in out:
                continue
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
    return out


def postgres_pids() -> list[int]:
    pids = []
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("postgres"):
            pids.append(p.pid)
    return pids


class MemorySampler:
    """Every `interval` s: RSS (process + children) of each role; keeps the max and the last value."""

    def __init__(self, roles: Callable[[], dict[str, int]], interval: float = 0.5) -> None:
        self._roles = roles
        self._interval = interval
        self.max: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> None:
        for role, pid in self._roles().items():
            rss = tree_rss_mb(pid)
            if rss is None:
                continue
            self.last[role] = rss
            self.max[role] = max(self.max.get(role, 0.0), rss)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self.sample()

    def report(self) -> dict[str, Any]:
        self.sample()
        out: dict[str, Any] = {}
        for role in sorted(self.max):
            out[f"{role}_max"] = round(self.max[role], 1)
            out[f"{role}_last"] = round(self.last.get(role, 0.0), 1)
        out["sample_interval_s"] = self._interval
        return out


class CpuMeter:
    """CPU seconds spent by each party during a phase, as a share of one core (1.0 = one full core)."""

    def __init__(self, roles: Callable[[], dict[str, list[int]]]) -> None:
        self._roles = roles

    def snapshot(self) -> tuple[float, dict[str, dict[int, float]]]:
        values = {"client": {os.getpid(): sum(os.times()[:2])}}
        for role, pids in self._roles().items():
            values[role] = tree_cpu_s(pids)
        t = psutil.cpu_times()
        values["_machine"] = {0: sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)}
        return time.perf_counter(), values

    @staticmethod
    def diff(
        a: tuple[float, dict[str, dict[int, float]]], b: tuple[float, dict[str, dict[int, float]]]
    ) -> dict[str, float]:
        """Cores used per party; `machine` is the whole box, `other` what none of the parties explains
        (other jobs on a shared machine, processes that exited during the phase)."""
        wall = max(b[0] - a[0], 1e-9)
        out = {}
        for role, now in b[1].items():
            before = a[1].get(role, {})
            used = sum(max(cpu - before.get(pid, 0.0), 0.0) for pid, cpu in now.items())
            out[role] = round(used / wall, 2)
        machine = out.pop("_machine")
        out["total"] = round(sum(out.values()), 2)
        out["machine"] = machine
        out["other"] = round(max(machine - out["total"], 0.0), 2)
        return out


# ------------------------------------------------------------------------------------------------
# the managed stack: database, broker, api, worker


class ManagedStack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db_name = f"bench_{uuid.uuid4().hex[:12]}"
        self.admin_dsn = args.pg_dsn.rstrip("/")
        self.database_url = f"{args.pg_url.rstrip('/')}/{self.db_name}"
        self.broker: Any = None
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_env: dict[str, str] = {}
        self.port = 0
        self._db_created = False
        self._logs: list[Any] = []

    # --- environment ---
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers if self.broker else "",
                "HOST": "127.0.0.1",
                "LLM_BACKEND": "dryrun",
                "LLM_FALLBACK_BACKEND": "",
                "DRYRUN_LATENCY_MS": "0",
                "DRYRUN_FAILURE_RATE": "0",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.port:
            env["PORT"] = str(self.port)
        if self.args.partitions:
            env["KAFKA_TOPIC_PARTITIONS"] = str(self.args.partitions)
        env.update(extra)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- database ---
    async def create_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
            self._db_created = True
        finally:
            await conn.close()

    async def drop_database(self) -> None:
        if not self._db_created:
            return
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.db_name,
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}"')
            self._db_created = False
        finally:
            await conn.close()

    # --- processes ---
    def _spawn(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        out = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(out)
        out.write(f"\n===== {time.strftime('%F %T')} {command} =====\n".encode())
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "service", command],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )

    def _run_once(self, command: str, timeout: float = 120) -> None:
        proc = self._spawn(command, command, self.env())
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc, 5)
            raise SetupError(f"`python -m service {command}` timed out") from None
        if rc != 0:
            raise SetupError(f"`python -m service {command}` exited {rc}; see {LOG_DIR / (command + '.log')}")

    async def start(self) -> None:
        from service.messaging.embedded import EmbeddedBroker, free_port

        log(f"creating database {self.db_name}")
        await self.create_database()
        await asyncio.to_thread(self._run_once, "migrate")
        if not self.args.no_seed:
            await asyncio.to_thread(self._run_once, "seed")
        log("starting the embedded broker")
        self.broker = EmbeddedBroker()
        await asyncio.to_thread(self.broker.start)
        self.port = free_port()
        log(f"starting api on {self.url}")
        self.api = self._spawn("api", "api", self.env())
        self.start_worker()
        await wait_healthy(self, self.api, timeout=60)

    def start_worker(self, **extra: str) -> None:
        self.worker_env = dict(extra)
        log(f"starting worker {extra or ''}")
        self.worker = self._spawn("worker", "worker", self.env(**extra))

    async def restart_worker(self, **extra: str) -> None:
        if self.worker is not None:
            log("stopping worker")
            await asyncio.to_thread(stop_process, self.worker, 30)
        self.start_worker(**extra)

    def roles(self) -> dict[str, int]:
        roles = {}
        if self.api is not None and self.api.poll() is None:
            roles["api"] = self.api.pid
        if self.worker is not None and self.worker.poll() is None:
            roles["worker"] = self.worker.pid
        return roles

    def cpu_roles(self) -> dict[str, list[int]]:
        roles = {k: [v] for k, v in self.roles().items()}
        proc = getattr(self.broker, "_process", None)
        if proc is not None:
            roles["broker"] = [proc.pid]
        roles["postgres"] = postgres_pids()
        return roles

    def check_alive(self) -> None:
        for name, proc in (("api", self.api), ("worker", self.worker)):
            if proc is not None and proc.poll() is not None:
                raise SetupError(f"{name} exited with {proc.returncode}; see {LOG_DIR / (name + '.log')}")

    async def stop(self) -> None:
        for proc in (self.api, self.worker):
            if proc is not None:
                await asyncio.to_thread(stop_process, proc, 30)
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.broker.stop)
        try:
            await self.drop_database()
        except Exception as exc:  # pragma: no cover - reported, not fatal
            log(f"could not drop database {self.db_name}: {exc!r}")
        for f in self._logs:
            with contextlib.suppress(Exception):
                f.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class ExternalStack:
    """--url: a service someone else runs. Memory comes from --pid role:pid."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.url.rstrip("/")
        self._pids: dict[str, int] = {}
        for item in args.pid or []:
            role, _, pid = item.partition(":")
            if not pid:
                role, pid = ("api" if "api" not in self._pids else "worker"), role
            self._pids[role] = int(pid)

    async def start(self) -> None:
        await wait_healthy(self, None, timeout=30)

    def roles(self) -> dict[str, int]:
        return {r: p for r, p in self._pids.items() if psutil.pid_exists(p)}

    def cpu_roles(self) -> dict[str, list[int]]:
        roles = {k: [v] for k, v in self.roles().items()}
        roles["postgres"] = postgres_pids()
        return roles

    def check_alive(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def wait_healthy(stack: Any, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    host, port = parse_loopback_url(stack.url)
    raw = build_request("GET", "/api/v1/health", f"{host}:{port}")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SetupError(f"api exited with {proc.returncode}; see {LOG_DIR / 'api.log'}")
        conn = Connection(host, port)
        try:
            status, body = await conn.request(raw)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        finally:
            await conn.close()
        await asyncio.sleep(0.2)
    raise SetupError(f"service at {stack.url} not healthy within {timeout}s: {last}")


# ------------------------------------------------------------------------------------------------
# load generation


class LoadResult:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.elapsed = 0.0
        self.done = 0
        self.timed_out = False

    def summary(self, expected_status: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.done,
            "seconds": round(self.elapsed, 3),
            "rps": round(self.done / self.elapsed, 1) if self.elapsed else 0.0,
            **latency_summary(self.latencies),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        if expected_status is not None:
            out[f"non_{expected_status}"] = sum(
                v for k, v in self.statuses.items() if k != expected_status
            ) + sum(self.errors.values())
        if self.errors:
            out["errors"] = self.errors
        if self.timed_out:
            out["timed_out"] = True
        return out


async def run_load(
    url: str,
    total: int,
    concurrency: int,
    make_request: Callable[[int], bytes],
    on_response: Callable[[int, int, bytes], None] | None = None,
    time_limit: float = 120.0,
    pace_s: float = 0.0,
) -> LoadResult:
    """Closed loop: `concurrency` virtual users, one keep-alive connection each, `total` requests.

    Request i is `make_request(i)`; `on_response(i, status, body)` sees every answer. Bounded by
    `time_limit`. With `pace_s`, each user waits so that its requests start at least `pace_s` apart.
    """
    host, port = parse_loopback_url(url)
    result = LoadResult()
    next_index = 0
    deadline = time.perf_counter() + time_limit
    perf = time.perf_counter
    latencies = result.latencies
    statuses = result.statuses

    users = min(concurrency, max(total, 1))

    async def user(number: int) -> None:
        nonlocal next_index
        conn = Connection(host, port)
        if pace_s:
            # Paced users start spread over one period, so their requests arrive evenly instead of
            # in bursts of `concurrency` at once (which would measure self-made queueing).
            await asyncio.sleep(pace_s * number / users)
        try:
            while True:
                i = next_index
                if i >= total:
                    return
                if perf() > deadline:
                    result.timed_out = True
                    return
                next_index = i + 1
                raw = make_request(i)
                t0 = perf()
                try:
                    status, body = await conn.request(raw)
                except Exception as exc:  # counted, the user goes on with a fresh connection
                    key = type(exc).__name__
                    result.errors[key] = result.errors.get(key, 0) + 1
                    await conn.close()
                    continue
                t1 = perf()
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if on_response is not None:
                    on_response(i, status, body)
                if pace_s:
                    wait = pace_s - (perf() - t0)
                    if wait > 0:
                        await asyncio.sleep(wait)
        finally:
            await conn.close()

    start = perf()
    await asyncio.gather(*(user(number) for number in range(users)))
    result.elapsed = perf() - start
    result.done = len(latencies)
    return result


def submit_request_bytes(url: str) -> bytes:
    host, port = parse_loopback_url(url)
    return build_request("POST", SUBMIT_PATH, f"{host}:{port}", orjson.dumps(PAYLOAD))


def status_request_bytes(url: str, request_id: str) -> bytes:
    host, port = parse_loopback_url(url)
    return build_request("GET", f"{SUBMIT_PATH}/{request_id}", f"{host}:{port}")


async def submit_many(
    url: str, total: int, concurrency: int, time_limit: float, pace_s: float = 0.0
) -> tuple[LoadResult, list[str]]:
    raw = submit_request_bytes(url)
    ids: list[str | None] = [None] * total

    def on_response(i: int, status: int, body: bytes) -> None:
        if status in (200, 202):
            ids[i] = orjson.loads(body)["id"]

    result = await run_load(url, total, concurrency, lambda i: raw, on_response, time_limit, pace_s)
    return result, [x for x in ids if x]


async def fetch_statuses(
    url: str, ids: list[str], concurrency: int = 20, time_limit: float = 120.0
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    raws = [status_request_bytes(url, x) for x in ids]

    def on_response(i: int, status: int, body: bytes) -> None:
        if status == 200:
            rows[ids[i]] = orjson.loads(body)

    await run_load(url, len(ids), concurrency, raws.__getitem__, on_response, time_limit)
    return rows


async def wait_final(
    url: str, ids: list[str], timeout: float, concurrency: int = 20, interval: float = 0.25
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll the non-final ids until every one is final or `timeout`; (last rows by id, seconds waited)."""
    start = time.perf_counter()
    deadline = start + timeout
    rows: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while pending:
        got = await fetch_statuses(url, pending, concurrency, max(deadline - time.perf_counter(), 1.0))
        rows.update(got)
        pending = [x for x in pending if rows.get(x, {}).get("status") not in FINAL]
        if not pending or time.perf_counter() >= deadline:
            break
        # Poll less the more is left: the bench must not steal the CPU it is measuring.
        await asyncio.sleep(max(interval, min(2.0, len(pending) / 2000)))
    return rows, time.perf_counter() - start


def status_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        s = row.get("status", "?")
        counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items()))


async def probe_pipeline(url: str, timeout: float = 90.0) -> float:
    """Submit one request and wait until it is final: the worker has joined its group and works."""
    t0 = time.perf_counter()
    result, ids = await submit_many(url, 1, 1, 30)
    if not ids:
        raise SetupError(f"probe submit failed: {result.summary()}")
    rows, _ = await wait_final(url, ids, timeout, concurrency=1, interval=0.1)
    status = rows.get(ids[0], {}).get("status")
    if status not in FINAL:
        raise SetupError(
            f"probe request not final after {timeout}s (status {status}); is the worker consuming?"
        )
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# phases


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Any) -> None:
        self.args = args
        self.stack = stack
        self.url: str = stack.url
        self.report: dict[str, Any] = {}
        self.submitted_ids: list[str] = []
        self.cpu = CpuMeter(stack.cpu_roles)
        self.quick = args.quick
        self._probed = False
        self._drained: list[str] | None = None
        self.submit_report: dict[str, Any] | None = None

    def n(self, name: str) -> int:
        override = getattr(self.args, f"n_{name}", None)
        if override:
            return int(override)
        full, quick = COUNTS[name]
        return quick if self.quick else full

    async def ensure_worker(self, **extra: str) -> None:
        """(Re)start the managed worker with these settings unless it already runs with them."""
        if not isinstance(self.stack, ManagedStack):
            return
        restart = (
            self.stack.worker_env != extra
            or self.stack.worker is None
            or self.stack.worker.poll() is not None
        )
        if restart:
            await self.stack.restart_worker(**extra)
        if restart or not self._probed:
            took = await probe_pipeline(self.url)
            self._probed = True
            self.report.setdefault("worker_ready_s", []).append(round(took, 2))
            log(f"worker ready (probe took {took:.2f}s)")

    async def drain(self, ids: list[str], what: str, timeout: float) -> dict[str, Any]:
        """Wait until earlier submissions are final, so they do not load the next phase."""
        if not ids or self._drained is ids:
            return {}
        rows, waited = await wait_final(self.url, ids, timeout)
        pending = [x for x in ids if rows.get(x, {}).get("status") not in FINAL]
        log(f"{what}: drained in {waited:.1f}s, {len(pending)} still pending")
        if not pending:
            self._drained = ids
        return {
            "drain_s": round(waited, 2),
            "final_statuses": status_counts(rows.values()),
            "pending_after_drain": len(pending),
        }

    async def phase_submit(self) -> dict[str, Any]:
        await self.ensure_worker()
        c = self.args.concurrency
        warm, _ = await submit_many(self.url, self.n("warmup"), c, 60)
        log(f"submit warm-up: {warm.done} in {warm.elapsed:.2f}s")
        before = self.cpu.snapshot()
        result, ids = await submit_many(self.url, self.n("submit"), c, self.args.phase_time_limit)
        cpu = CpuMeter.diff(before, self.cpu.snapshot())
        self.submitted_ids = ids
        out = {"concurrency": c, **result.summary(expected_status=202), "cpu_cores": cpu}
        self.submit_report = out
        log(
            f"submit: {out['rps']} req/s p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms"
            f" non-202 {out['non_202']}"
        )
        return out

    async def phase_status_reads(self) -> dict[str, Any]:
        ids = self.submitted_ids
        if not ids:  # running without the submit phase: make some ids first
            await self.ensure_worker()
            _, ids = await submit_many(self.url, min(2000, self.n("status_reads")), self.args.concurrency, 60)
            self.submitted_ids = ids
        if not ids:
            raise SetupError("no request ids to read")
        # Let the worker finish the submit backlog first: this phase measures reads, not contention.
        backlog = await self.drain(ids, "submit backlog", self.args.drain_timeout)
        if self.submit_report is not None:
            self.submit_report["worker_backlog"] = backlog
        total = self.n("status_reads")
        raws = [status_request_bytes(self.url, x) for x in ids]
        nraws = len(raws)
        c = self.args.concurrency
        await run_load(self.url, min(300, total), c, lambda i: raws[i % nraws], None, 60)  # warm-up
        before = self.cpu.snapshot()
        result = await run_load(
            self.url, total, c, lambda i: raws[i % nraws], None, self.args.phase_time_limit
        )
        cpu = CpuMeter.diff(before, self.cpu.snapshot())
        out = {
            "concurrency": c,
            "distinct_ids": nraws,
            **result.summary(expected_status=200),
            "cpu_cores": cpu,
        }
        out.pop("p90_ms", None)
        log(f"status reads: {out['rps']} req/s p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms")
        return out

    async def phase_overhead(self) -> dict[str, Any]:
        await self.ensure_worker()
        drained = await self.drain(self.submitted_ids, "earlier submissions", self.args.drain_timeout)
        users = self.args.overhead_users
        total = self.n("overhead")
        rate = self.args.overhead_rate
        pace = users / rate if rate > 0 else 0.0
        before = self.cpu.snapshot()
        result, ids = await submit_many(self.url, total, users, self.args.phase_time_limit, pace_s=pace)
        rows, waited = await wait_final(self.url, ids, self.args.final_timeout)
        cpu = CpuMeter.diff(before, self.cpu.snapshot())
        overheads, queue_waits, processing = [], [], []
        for row in rows.values():
            created, started, finished = (
                parse_ts(row.get(k)) for k in ("created_at", "started_at", "finished_at")
            )
            if row.get("status") == "completed" and created and finished:
                overheads.append((finished - created).total_seconds())
                if started:
                    queue_waits.append((started - created).total_seconds())
                    processing.append((finished - started).total_seconds())
        pending = sum(1 for x in ids if rows.get(x, {}).get("status") not in FINAL)
        s = latency_summary(overheads)
        out = {
            "users": users,
            "target_rate_per_s": rate,
            "submitted": len(ids),
            "submit_rps": round(result.done / result.elapsed, 1) if result.elapsed else 0,
            "submit_non_202": result.summary(202)["non_202"],
            "measured": len(overheads),
            "pending_after_wait": pending,
            "wait_s": round(waited, 2),
            "final_statuses": status_counts(rows.values()),
            "p50_ms": s["p50_ms"],
            "p90_ms": s["p90_ms"],
            "p99_ms": s["p99_ms"],
            "max_ms": s["max_ms"],
            "created_to_started": latency_summary(queue_waits),
            "started_to_finished": latency_summary(processing),
            "submit_latency": latency_summary(result.latencies),
            "cpu_cores": cpu,
            "before": drained,
        }
        if pending or not overheads:
            out["p50_ms"] = out["p50_ms"] if overheads else None
        log(
            f"overhead: p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms"
            f" ({len(overheads)} completed, {pending} pending)"
        )
        return out

    async def phase_throughput_200ms(self) -> dict[str, Any]:
        latency_ms = self.args.slow_latency_ms
        concurrency = self.args.slow_worker_concurrency
        await self.ensure_worker(DRYRUN_LATENCY_MS=str(latency_ms), WORKER_CONCURRENCY=str(concurrency))
        total = self.n("throughput_200ms")
        before = self.cpu.snapshot()
        t0 = time.perf_counter()
        result, ids = await submit_many(self.url, total, self.args.concurrency, self.args.phase_time_limit)
        submit_s = time.perf_counter() - t0
        rows, _ = await wait_final(self.url, ids, self.args.final_timeout, interval=1.0)
        cpu = CpuMeter.diff(before, self.cpu.snapshot())
        started = [t for r in rows.values() if (t := parse_ts(r.get("started_at")))]
        finished = [
            t
            for r in rows.values()
            if r.get("status") == "completed" and (t := parse_ts(r.get("finished_at")))
        ]
        completed = len(finished)
        span = (max(finished) - min(started)).total_seconds() if finished and started else 0.0
        pending = sum(1 for x in ids if rows.get(x, {}).get("status") not in FINAL)
        out = {
            "dryrun_latency_ms": latency_ms,
            "worker_concurrency": concurrency,
            "submitted": len(ids),
            "submit_non_202": result.summary(202)["non_202"],
            "submit_seconds": round(submit_s, 2),
            "submit_rps": round(len(ids) / submit_s, 1) if submit_s else 0,
            "completed": completed,
            "pending_after_wait": pending,
            "final_statuses": status_counts(rows.values()),
            "span_s": round(span, 3),
            "completed_per_s": round(completed / span, 1) if span > 0 else 0.0,
            "ideal_per_s": round(concurrency * 1000 / latency_ms, 1) if latency_ms else None,
            "cpu_cores": cpu,
        }
        if pending:
            out["completed_per_s"] = round(completed / span, 1) if span > 0 else 0.0
        log(f"throughput @{latency_ms}ms: {out['completed_per_s']}/s ({completed} completed in {span:.2f}s)")
        return out


def evaluate_targets(report: dict[str, Any], phases: list[str]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for name, (section, key, op, target) in TARGETS.items():
        if section != "memory_mb" and section not in phases:
            continue
        value = report.get(section, {}).get(key) if isinstance(report.get(section), dict) else None
        if value is None:
            met = False
        elif op == ">=":
            met = value >= target
        else:
            met = value <= target
        targets[name] = {"target": f"{op} {target:g}", "value": value, "met": bool(met)}
    return targets


# ------------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {', '.join(PHASES)}")
    p.add_argument("--keep-going", action="store_true", help="run the remaining phases after one errors")
    p.add_argument("--url", help="target an already running service (loopback only); nothing is started")
    p.add_argument(
        "--pid",
        action="append",
        metavar="ROLE:PID",
        help="with --url: a process to watch for memory, e.g. api:1234 worker:5678 (repeatable)",
    )
    p.add_argument("--concurrency", type=int, default=50, help="virtual users for submit/read phases")
    p.add_argument("--overhead-users", type=int, default=8)
    p.add_argument(
        "--overhead-rate",
        type=float,
        default=100.0,
        help="overhead phase: submissions per second in all (0 = as fast as the users can)",
    )
    p.add_argument("--slow-latency-ms", type=int, default=200)
    p.add_argument("--slow-worker-concurrency", type=int, default=200)
    p.add_argument("--partitions", type=int, default=0, help="KAFKA_TOPIC_PARTITIONS for the managed stack")
    p.add_argument("--no-seed", action="store_true", help="managed stack: migrate only, skip `service seed`")
    p.add_argument("--phase-time-limit", type=float, default=180.0, help="seconds; bounds each load loop")
    p.add_argument("--drain-timeout", type=float, default=180.0)
    p.add_argument("--final-timeout", type=float, default=120.0)
    p.add_argument(
        "--pg-dsn",
        default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin connection used to create/drop the bench database",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"),
        help="DATABASE_URL prefix for the service (database name appended)",
    )
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    for name in COUNTS:
        p.add_argument(
            f"--n-{name.replace('_', '-')}",
            dest=f"n_{name}",
            type=int,
            default=None,
            help=f"requests in {name} (default {COUNTS[name][0]}, quick {COUNTS[name][1]})",
        )
    args = p.parse_args(argv)
    args.phase_list = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phase_list) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.url:
        parse_loopback_url(args.url)  # refuses non-loopback
    elif args.pid:
        p.error("--pid only goes with --url")
    return args


async def amain(args: argparse.Namespace) -> int:
    # SIGTERM behaves like Ctrl-C: cancel, unwinding through the `finally` that stops what we started.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    stack: Any = ExternalStack(args) if args.url else ManagedStack(args)
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "mem_total_mb": round(psutil.virtual_memory().total / 2**20),
        },
        "mode": "external" if args.url else "managed",
        "quick": args.quick,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    phases = [x for x in PHASES if x in args.phase_list]
    if args.url and "throughput_200ms" in phases:
        report["throughput_200ms"] = {"skipped": "needs restarting the worker; not possible with --url"}
        phases.remove("throughput_200ms")
    sampler = MemorySampler(stack.roles)
    errors: dict[str, str] = {}
    bench: Bench | None = None
    try:
        await stack.start()
        sampler.start()
        bench = Bench(args, stack)
        for phase in phases:
            log(f"phase {phase}")
            try:
                report[phase] = await getattr(bench, f"phase_{phase}")()
                stack.check_alive()
            except (Exception, SetupError) as exc:
                errors[phase] = f"{type(exc).__name__}: {exc}"
                log(f"phase {phase} failed: {errors[phase]}")
                report[phase] = {"error": errors[phase]}
                if not args.keep_going:
                    break
    except SetupError as exc:
        errors["setup"] = str(exc)
        log(f"setup failed: {exc}")
    finally:
        if bench is not None and bench.report:
            report["startup"] = bench.report
        report["memory_mb"] = sampler.report() if sampler._thread.is_alive() else {}
        sampler.stop()
        log("stopping everything the bench started")
        await stack.stop()
    if args.url and not stack.roles():
        report["memory_mb"] = {"skipped": "pass --pid api:PID --pid worker:PID to measure"}
    targets = evaluate_targets(report, phases)
    if isinstance(report.get("memory_mb"), dict) and "skipped" in report["memory_mb"]:
        targets = {k: v for k, v in targets.items() if not k.endswith("_rss_mb")}
    report["targets"] = targets
    if errors:
        report["errors"] = errors
    report["all_met"] = bool(targets) and all(t["met"] for t in targets.values()) and not errors
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text, flush=True)
    with contextlib.suppress(OSError):
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if "setup" in errors:
        return 2
    return 0 if report["all_met"] else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        return int(runner(amain(args)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
