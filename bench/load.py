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
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench.httpclient import parse_loopback_url
from bench.loadgen import (
    FINAL,
    Target,
    probe_pipeline,
    run_load,
    status_counts,
    status_request_bytes,
    submit_many,
    wait_final,
)
from bench.measure import CpuMeter, MemorySampler, SetupError, latency_summary, log, parse_ts
from bench.stack import RESULTS_DIR, ExternalStack, ManagedStack

PHASES = ("submit", "status_reads", "overhead", "throughput_200ms")
BARE_ROUNDS = 4

TARGETS = {
    # name: (section, key, comparison, target)
    "submit_rps": ("submit", "rps", ">=", 1100.0),
    "submit_non_202": ("submit", "non_202", "<=", 0),
    "status_reads_rps": ("status_reads", "rps", ">=", 1600.0),
    "status_reads_vs_bare": ("status_reads", "vs_bare_ratio", ">=", 0.8),
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


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Any) -> None:
        self.args = args
        self.stack = stack
        self.url: str = stack.url
        self.target = Target(stack.url, stack.api_key)
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
            took = await probe_pipeline(self.target)
            self._probed = True
            self.report.setdefault("worker_ready_s", []).append(round(took, 2))
            log(f"worker ready (probe took {took:.2f}s)")

    async def drain(self, ids: list[str], what: str, timeout: float) -> dict[str, Any]:
        """Wait until earlier submissions are final, so they do not load the next phase."""
        if not ids or self._drained is ids:
            return {}
        rows, waited = await wait_final(self.target, ids, timeout)
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
        warm, _ = await submit_many(self.target, self.n("warmup"), c, 60)
        log(f"submit warm-up: {warm.done} in {warm.elapsed:.2f}s")
        before = self.cpu.snapshot()
        result, ids = await submit_many(self.target, self.n("submit"), c, self.args.phase_time_limit)
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
            _, ids = await submit_many(
                self.target, min(2000, self.n("status_reads")), self.args.concurrency, 60
            )
            self.submitted_ids = ids
        if not ids:
            raise SetupError("no request ids to read")
        # Let the worker finish the submit backlog first: this phase measures reads, not contention.
        backlog = await self.drain(ids, "submit backlog", self.args.drain_timeout)
        if self.submit_report is not None:
            self.submit_report["worker_backlog"] = backlog
        total = self.n("status_reads")
        raws = [status_request_bytes(self.target, x) for x in ids]
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
            "api_key": self.target.api_key is not None,
            **result.summary(expected_status=200),
            "cpu_cores": cpu,
        }
        out.pop("p90_ms", None)
        log(f"status reads: {out['rps']} req/s p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms")
        if self.stack.bare_url:
            out["vs_bare"] = await self.compare_with_bare(raws, total)
            log(f"status reads vs the bare endpoint: {out['vs_bare']}")
        return out

    async def compare_with_bare(self, raws: list[bytes], total: int) -> dict[str, Any]:
        """The API and the bare endpoint (bench/bare_status.py), same reads, alternated in rounds so
        that a noisy neighbour hits both alike. `ratio` = API rate / bare rate."""
        c = self.args.concurrency
        nraws = len(raws)
        bare_url = self.stack.bare_url
        per_round = max(total // (2 * BARE_ROUNDS), 100)
        await run_load(bare_url, min(300, total), c, lambda i: raws[i % nraws], None, 60)  # warm-up
        done = {"api": 0, "bare": 0}
        seconds = {"api": 0.0, "bare": 0.0}
        for _ in range(BARE_ROUNDS):
            for name, url in (("api", self.url), ("bare", bare_url)):
                result = await run_load(url, per_round, c, lambda i: raws[i % nraws], None, 60)
                if set(result.statuses) != {200}:
                    raise SetupError(f"{name} answered {result.statuses} to status reads")
                done[name] += result.done
                seconds[name] += result.elapsed
        rps = {name: round(done[name] / seconds[name], 1) for name in done}
        return {"rounds": BARE_ROUNDS, "api_rps": rps["api"], "bare_rps": rps["bare"],
                "ratio": round(rps["api"] / rps["bare"], 3)}  # fmt: skip

    async def phase_overhead(self) -> dict[str, Any]:
        await self.ensure_worker()
        drained = await self.drain(self.submitted_ids, "earlier submissions", self.args.drain_timeout)
        users = self.args.overhead_users
        total = self.n("overhead")
        rate = self.args.overhead_rate
        pace = users / rate if rate > 0 else 0.0
        before = self.cpu.snapshot()
        result, ids = await submit_many(self.target, total, users, self.args.phase_time_limit, pace_s=pace)
        rows, waited = await wait_final(self.target, ids, self.args.final_timeout)
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
        result, ids = await submit_many(self.target, total, self.args.concurrency, self.args.phase_time_limit)
        submit_s = time.perf_counter() - t0
        rows, _ = await wait_final(self.target, ids, self.args.final_timeout, interval=1.0)
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
        part = report.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if key == "vs_bare_ratio":  # only measured with the bare endpoint running
            comparison = part.get("vs_bare") if isinstance(part, dict) else None
            if not isinstance(comparison, dict):
                continue
            value = comparison.get("ratio")
        if value is None:
            met = False
        elif op == ">=":
            met = value >= target
        else:
            met = value <= target
        targets[name] = {"target": f"{op} {target:g}", "value": value, "met": bool(met)}
    return targets


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
    p.add_argument(
        "--no-api-key",
        action="store_true",
        help="managed stack: call without an API key (for a service from before keys, see --service-root)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("BENCH_API_KEY"), help="with --url: the API key to send"
    )
    p.add_argument(
        "--service-root",
        type=Path,
        help="managed stack: run the service from this source tree (e.g. an export of an earlier commit)",
    )
    p.add_argument(
        "--no-bare",
        dest="bare",
        action="store_false",
        help="managed stack: skip the bare-endpoint comparison of status reads",
    )
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
