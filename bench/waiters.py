"""Idle waiters: what 1,000 long-polls and SSE streams waiting on one API process cost while idle.

    python -m bench.waiters [--waiters 1000] [--window 20]

Starts the managed stack (PostgreSQL database, embedded broker, one api, one worker), stops the
worker so nothing finishes, submits one request per waiter, then holds half the waiters as
long-polls (`GET …?wait=`) and half as SSE streams (`GET …/events`), and measures the API
process's CPU over a quiet window, before and with the waiters. Target: < 5 % of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from bench.entry import run_bench
from bench.httpclient import Connection, build_request, parse_loopback_url
from bench.measure import CpuMeter, log
from bench.stack import ManagedStack, stop_process

_HOLD_SECONDS = 600  # longer than any window: the waiters must not come back on their own


async def _submit(host: str, port: int, headers: dict[str, str], count: int) -> list[str]:
    body = json.dumps({"kind": "process_analysis", "title": "t", "description": "waiting"}).encode()
    raw = build_request("POST", "/api/v1/requests", f"{host}:{port}", body, headers=headers)
    ids: list[str] = []

    async def user(n: int) -> None:
        conn = Connection(host, port)
        try:
            for _ in range(n):
                status, answer = await conn.request(raw)
                if status != 202:
                    raise RuntimeError(f"submit answered {status}: {answer[:200]!r}")
                ids.append(json.loads(answer)["id"])
        finally:
            await conn.close()

    users = 20
    await asyncio.gather(*(user(count // users + (i < count % users)) for i in range(users)))
    return ids


async def _hold(host: str, port: int, path: str, headers: dict[str, str]) -> asyncio.StreamWriter:
    """Send one request and keep its connection open; returns once the response has begun."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(build_request("GET", path, f"{host}:{port}", headers=headers))
    await writer.drain()
    if path.endswith("/events"):
        await reader.readuntil(b"\r\n\r\n")  # the headers of the stream: it is open
    return writer


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["LONG_POLL_MAX_SECONDS"] = str(_HOLD_SECONDS)
    os.environ["SSE_MAX_SECONDS"] = str(_HOLD_SECONDS)
    stack = ManagedStack(args)
    writers: list[asyncio.StreamWriter] = []
    try:
        await stack.start()
        if stack.worker is not None:
            await asyncio.to_thread(stop_process, stack.worker, 30)  # nothing may finish
            stack.worker = None
        host, port = parse_loopback_url(stack.url)
        headers = {"Authorization": f"Bearer {stack.api_key}"} if stack.api_key else {}
        log(f"submitting {args.waiters} requests")
        ids = await _submit(host, port, headers, args.waiters)
        meter = CpuMeter(stack.cpu_roles)
        await asyncio.sleep(3)
        log(f"measuring the idle api for {args.window} s")
        before = meter.snapshot()
        await asyncio.sleep(args.window)
        idle = CpuMeter.diff(before, meter.snapshot())
        log(f"opening {len(ids)} waiters")
        for index, request_id in enumerate(ids):
            path = (
                f"/api/v1/requests/{request_id}/events"
                if index % 2
                else f"/api/v1/requests/{request_id}?wait={_HOLD_SECONDS}"
            )
            writers.append(await _hold(host, port, path, headers))
        await asyncio.sleep(3)
        log(f"measuring the api with {len(writers)} waiters for {args.window} s")
        before = meter.snapshot()
        await asyncio.sleep(args.window)
        waiting = CpuMeter.diff(before, meter.snapshot())
        return {
            "waiters": len(writers),
            "long_polls": (len(writers) + 1) // 2,
            "sse_streams": len(writers) // 2,
            "window_s": args.window,
            "api_cores_idle": idle.get("api"),
            "api_cores_with_waiters": waiting.get("api"),
            "machine_cores_busy": waiting.get("machine"),
            "target": "api_cores_with_waiters < 0.05",
            "met": (waiting.get("api") or 0) < 0.05,
        }
    finally:
        for writer in writers:
            writer.close()
        await stack.stop()


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--waiters", type=int, default=1000)
    own.add_argument("--window", type=float, default=20.0)
    return run_bench(own, argv, run)


if __name__ == "__main__":
    sys.exit(main())
