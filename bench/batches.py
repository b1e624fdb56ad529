"""Batch benchmark: acceptance and completion of a large batch, API memory during a 50,000-line
upload, interactive latency while a batch drains, and a second owner's small batch behind a big one.

    python -m bench.batches            # starts PostgreSQL db, broker, one api, one worker itself
    python -m bench.batches --quick    # smaller counts

Prints one JSON object (figures and targets); exit 1 when a target is missed, 2 on setup errors.
Targets (issue 10, 2-core machine): 10,000 lines accepted ≤ 2 s and completed ≤ 20 s (zero-latency
dryrun); API memory ≤ 200 MB during a 50,000-line upload; with 50 ms dryrun latency and a 20,000-
line batch draining, interactive submit→completed p99 ≤ 2× its idle figure; a second owner's
100-line batch completes ≤ 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.measure import MemorySampler, SetupError, latency_summary, log, parse_ts
from bench.stack import RESULTS_DIR, ManagedStack

QUESTION = {
    "kind": "spreadsheet",
    "query_text": "Сумма по столбцам",
    "input_range": "A1:C3",
    "category": "analysis",
    "input_data": [["Товар", "Январь", "Февраль"], ["A", 1, 2], ["B", 3, 4]],
}


def native_jsonl(count: int, prefix: str) -> bytes:
    return b"".join(orjson.dumps({"custom_id": f"{prefix}{n}", **QUESTION}) + b"\n" for n in range(count))


def openai_jsonl(count: int) -> bytes:
    body = {"messages": [{"role": "user", "content": "Summarise the quarter in one line."}]}
    return b"".join(
        orjson.dumps({"custom_id": f"o{n}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        + b"\n"
        for n in range(count)
    )


def client(url: str, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=120)


async def submit_batch(http: httpx.AsyncClient, body: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    response = await http.post("/api/v1/batches", content=body, headers={"content-type": "application/jsonl"})
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise SetupError(f"batch refused: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"]), elapsed


async def wait_batch(http: httpx.AsyncClient, batch_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = (await http.get(f"/api/v1/batches/{batch_id}")).json()
        if batch["status"] in ("completed", "failed", "cancelled", "expired") or time.monotonic() > deadline:
            return batch
        await asyncio.sleep(0.1)


def seconds_to_finish(batch: dict[str, Any]) -> float | None:
    created, done = parse_ts(batch.get("created_at")), parse_ts(batch.get("completed_at"))
    return round((done - created).total_seconds(), 2) if created and done else None


async def interactive_latencies(http: httpx.AsyncClient, count: int, pause: float) -> list[float]:
    """submit → completed by the rows' own timestamps, one request at a time at a steady pace."""
    latencies = []
    for number in range(count):
        body = {"kind": "chat", "messages": [{"role": "user", "content": f"quick question {number}"}]}
        request_id = (await http.post("/api/v1/requests", json=body)).json()["id"]
        status = (await http.get(f"/api/v1/requests/{request_id}", params={"wait": 30})).json()
        created, finished = parse_ts(status.get("created_at")), parse_ts(status.get("finished_at"))
        if status.get("status") == "completed" and created and finished:
            latencies.append((finished - created).total_seconds())
        await asyncio.sleep(pause)
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n_accept, n_upload, n_drain, n_small, n_probe = (
        (1000, 5000, 2000, 100, 30) if args.quick else (10_000, 50_000, 20_000, 100, 150)
    )
    stack = ManagedStack(args)
    figures: dict[str, Any] = {"lines": {"accept": n_accept, "upload": n_upload, "drain": n_drain}}
    await stack.start()
    try:
        async with client(stack.url, stack.api_key) as http:
            # The worker has joined its group and a request went all the way through.
            await interactive_latencies(http, 3, 0)
            # 1. A large batch with a zero-latency backend: accepted, then completed.
            batch_id, accepted = await submit_batch(http, native_jsonl(n_accept, "a"))
            done = await wait_batch(http, batch_id, timeout=300)
            figures["accept_seconds"] = round(accepted, 2)
            figures["complete_seconds"] = seconds_to_finish(done)
            figures["complete_counts"] = done["counts"]

            # 2. API memory while the OpenAI-style upload + create of a 50,000-line file runs.
            sampler = MemorySampler(stack.roles, interval=0.1)
            sampler.sample()
            figures["api_memory_before_upload_mb"] = round(sampler.last.get("api", 0.0), 1)
            sampler.start()
            started = time.perf_counter()
            uploaded = await http.post(
                "/v1/files", files={"file": ("big.jsonl", openai_jsonl(n_upload))}, data={"purpose": "batch"}
            )
            created = await http.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded.json()["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
            figures["upload_create_seconds"] = round(time.perf_counter() - started, 2)
            sampler.stop()
            figures["upload_memory_mb"] = sampler.report()
            if created.status_code == 200:
                await http.post(f"/v1/batches/{created.json()['id']}/cancel")
            await asyncio.sleep(2)

        # 3. Lanes and fairness with a 50 ms backend.
        await stack.restart_worker(DRYRUN_LATENCY_MS="50")
        second_key = await asyncio.to_thread(stack._create_api_key)
        async with client(stack.url, stack.api_key) as http, client(stack.url, second_key) as other:
            await interactive_latencies(http, 5, 0)  # the restarted worker has joined its group
            idle = await interactive_latencies(http, n_probe, 0.05)
            big_id, _ = await submit_batch(http, native_jsonl(n_drain, "d"))
            await asyncio.sleep(2)  # the lane fills
            small_id, _ = await submit_batch(other, native_jsonl(n_small, "s"))
            busy = await interactive_latencies(http, n_probe, 0.05)
            small = await wait_batch(other, small_id, timeout=300)
            big = (await http.get(f"/api/v1/batches/{big_id}")).json()
            figures["interactive_idle"] = latency_summary(idle)
            figures["interactive_under_batch"] = latency_summary(busy)
            figures["big_batch_done_when_probe_ended"] = big["counts"]
            figures["second_owner_batch_seconds"] = seconds_to_finish(small)
            await http.post(f"/api/v1/batches/{big_id}/cancel")
    finally:
        await stack.stop()
    idle_p99 = figures["interactive_idle"]["p99_ms"] or 0
    busy_p99 = figures["interactive_under_batch"]["p99_ms"] or float("inf")
    figures["targets"] = {
        "accept_le_2s": figures["accept_seconds"] <= 2,
        "complete_le_20s": (figures["complete_seconds"] or float("inf")) <= 20,
        "api_memory_le_200mb": figures["upload_memory_mb"].get("api_max", 0) <= 200,
        "interactive_p99_le_2x_idle": busy_p99 <= 2 * idle_p99,
        "second_owner_le_10s": (figures["second_owner_batch_seconds"] or float("inf")) <= 10,
    }
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.batches", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    p.add_argument("--partitions", type=int, default=0)
    p.add_argument(
        "--pg-dsn", default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    p.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
    )
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "batches.json")
    args = p.parse_args(argv)
    # What ManagedStack reads besides these.
    args.service_root, args.no_seed, args.no_api_key, args.bare = None, False, False, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = asyncio.run(run(args))
    except SetupError as exc:
        log(f"setup failed: {exc}")
        return 2
    text = orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0 if all(figures["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
