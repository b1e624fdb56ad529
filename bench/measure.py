"""Figures of a bench run: latency percentiles, resident memory and CPU time of the parties."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psutil


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


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


# --- process resources: RSS sampling and CPU accounting -----------------------------------------


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
