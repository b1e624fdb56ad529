"""What the bench runs against: a managed stack (database, broker, api, worker — and the bare
comparison endpoint) or an external service given by URL."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.httpclient import Connection, build_request, parse_loopback_url
from bench.measure import SetupError, log, postgres_pids

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"


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
        # The service code to run: this checkout, or another (--service-root, e.g. a "before" tree).
        self.root = Path(args.service_root).resolve() if args.service_root else REPO_ROOT
        self.api_key: str | None = None
        self.bare: subprocess.Popen[bytes] | None = None
        self.bare_port = 0
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
    @property
    def bare_url(self) -> str | None:
        return f"http://127.0.0.1:{self.bare_port}" if self.bare_port else None

    def _spawn(
        self, name: str, command: str, env: dict[str, str], module: str = "service", cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        out = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(out)
        out.write(f"\n===== {time.strftime('%F %T')} {command} =====\n".encode())
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-m", module, *([command] if command else [])],
            cwd=cwd or self.root,
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
        if not self.args.no_api_key:
            self.api_key = await asyncio.to_thread(self._create_api_key)
        log("starting the embedded broker")
        self.broker = EmbeddedBroker()
        await asyncio.to_thread(self.broker.start)
        self.port = free_port()
        log(f"starting api on {self.url}")
        self.api = self._spawn("api", "api", self.env())
        self.start_worker()
        await wait_healthy(self, self.api, timeout=60)
        if self.args.bare:
            self.bare_port = free_port()
            log(f"starting the bare status endpoint on {self.bare_url}")
            self.bare = self._spawn(
                "bare", "", self.env(PORT=str(self.bare_port)), "bench.bare_status", REPO_ROOT
            )
            await wait_healthy(self, self.bare, timeout=60, url=self.bare_url)

    def _create_api_key(self) -> str:
        """A user key for the load, made with the service's CLI; a limit far above any load, so the
        rate limiter runs (and costs what it costs) without refusing anything."""
        command = [
            sys.executable,
            "-m",
            "service",
            "keys",
            "create",
            "--name",
            "bench",
            "--rpm",
            "1000000000",
        ]
        done = subprocess.run(
            command, cwd=self.root, env=self.env(), capture_output=True, timeout=120, check=False
        )
        found = re.search(rb"gok_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", done.stdout)
        if done.returncode != 0 or found is None:
            raise SetupError(
                f"`python -m service keys create` failed ({done.returncode}): {done.stderr[-500:]!r}"
            )
        return found.group(0).decode()

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
        if self.bare is not None and self.bare.poll() is None:
            roles["bare"] = [self.bare.pid]
        proc = getattr(self.broker, "_process", None)
        if proc is not None:
            roles["broker"] = [proc.pid]
        roles["postgres"] = postgres_pids()
        return roles

    def check_alive(self) -> None:
        for name, proc in (("api", self.api), ("worker", self.worker), ("bare", self.bare)):
            if proc is not None and proc.poll() is not None:
                raise SetupError(f"{name} exited with {proc.returncode}; see {LOG_DIR / (name + '.log')}")

    async def stop(self) -> None:
        for proc in (self.api, self.worker, self.bare):
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
        self.api_key: str | None = args.api_key
        self.bare_url: str | None = None
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


async def wait_healthy(
    stack: Any, proc: subprocess.Popen[bytes] | None, timeout: float, url: str | None = None
) -> None:
    url = url or stack.url
    host, port = parse_loopback_url(url)
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
    raise SetupError(f"service at {url} not healthy within {timeout}s: {last}")
