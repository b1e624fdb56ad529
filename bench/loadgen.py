"""Load generation: closed-loop virtual users on keep-alive connections, and the request helpers
of the phases (submit, read statuses, wait until final)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.httpclient import Connection, build_request, parse_loopback_url
from bench.measure import SetupError, latency_summary
from service.kinds.spreadsheet import SEED_EXAMPLE

FINAL = frozenset({"completed", "failed", "cancelled", "expired"})
PAYLOAD = {"kind": "spreadsheet", **SEED_EXAMPLE}
SUBMIT_PATH = "/api/v1/requests"


@dataclass(frozen=True)
class Target:
    """The service under load and the API key its calls carry (None: no key, e.g. anonymous)."""

    url: str
    api_key: str | None = None
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "headers", {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        )

    def host_header(self) -> str:
        host, port = parse_loopback_url(self.url)
        return f"{host}:{port}"


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


def submit_request_bytes(target: Target) -> bytes:
    return build_request(
        "POST", SUBMIT_PATH, target.host_header(), orjson.dumps(PAYLOAD), headers=target.headers
    )


def status_request_bytes(target: Target, request_id: str) -> bytes:
    return build_request("GET", f"{SUBMIT_PATH}/{request_id}", target.host_header(), headers=target.headers)


async def submit_many(
    target: Target, total: int, concurrency: int, time_limit: float, pace_s: float = 0.0
) -> tuple[LoadResult, list[str]]:
    raw = submit_request_bytes(target)
    ids: list[str | None] = [None] * total

    def on_response(i: int, status: int, body: bytes) -> None:
        if status in (200, 202):
            ids[i] = orjson.loads(body)["id"]

    result = await run_load(target.url, total, concurrency, lambda i: raw, on_response, time_limit, pace_s)
    return result, [x for x in ids if x]


async def fetch_statuses(
    target: Target, ids: list[str], concurrency: int = 20, time_limit: float = 120.0
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    raws = [status_request_bytes(target, x) for x in ids]

    def on_response(i: int, status: int, body: bytes) -> None:
        if status == 200:
            rows[ids[i]] = orjson.loads(body)

    await run_load(target.url, len(ids), concurrency, raws.__getitem__, on_response, time_limit)
    return rows


async def wait_final(
    target: Target, ids: list[str], timeout: float, concurrency: int = 20, interval: float = 0.25
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll the non-final ids until every one is final or `timeout`; (last rows by id, seconds waited)."""
    start = time.perf_counter()
    deadline = start + timeout
    rows: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while pending:
        got = await fetch_statuses(target, pending, concurrency, max(deadline - time.perf_counter(), 1.0))
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


async def probe_pipeline(target: Target, timeout: float = 90.0) -> float:
    """Submit one request and wait until it is final: the worker has joined its group and works."""
    t0 = time.perf_counter()
    result, ids = await submit_many(target, 1, 1, 30)
    if not ids:
        raise SetupError(f"probe submit failed: {result.summary()}")
    rows, _ = await wait_final(target, ids, timeout, concurrency=1, interval=0.1)
    status = rows.get(ids[0], {}).get("status")
    if status not in FINAL:
        raise SetupError(
            f"probe request not final after {timeout}s (status {status}); is the worker consuming?"
        )
    return time.perf_counter() - t0
