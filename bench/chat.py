"""The OpenAI-compatible front door under load: `POST /v1/chat/completions` through the queue.

    python -m bench.chat [--latency-n 2000] [--throughput-n 4000]

Managed stack (PostgreSQL database, embedded broker, one api, one worker), the dryrun backend with
zero latency. Two phases: latency at concurrency 10 (target p50 ≤ 15 ms, p99 ≤ 60 ms end to end),
throughput at concurrency 100 (target ≥ 300 completions/s). Every answer must be a 200
`chat.completion`; anything else is counted and reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

import orjson

from bench.httpclient import build_request
from bench.load import parse_args as load_args
from bench.loadgen import Target, run_load
from bench.measure import CpuMeter, log
from bench.stack import ManagedStack

CHAT_PATH = "/v1/chat/completions"
BODY = {"model": "dryrun", "messages": [{"role": "user", "content": "Say hello in one word."}]}


async def phase(target: Target, meter: CpuMeter, total: int, concurrency: int) -> dict[str, Any]:
    raw = build_request("POST", CHAT_PATH, target.host_header(), orjson.dumps(BODY), headers=target.headers)
    bad: dict[str, int] = {}

    def check(_index: int, status: int, body: bytes) -> None:
        if status != 200 or b'"chat.completion"' not in body:
            key = f"{status}:{body[:80]!r}"
            bad[key] = bad.get(key, 0) + 1

    before = meter.snapshot()
    result = await run_load(target.url, total, concurrency, lambda _i: raw, check, time_limit=300)
    report = result.summary(200)
    report["cores"] = CpuMeter.diff(before, meter.snapshot())
    if bad:
        report["unexpected"] = dict(sorted(bad.items(), key=lambda item: -item[1])[:5])
    return report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = ManagedStack(args)
    try:
        await stack.start()
        target = Target(stack.url, stack.api_key)
        meter = CpuMeter(stack.cpu_roles)
        log("warm-up")
        await phase(target, meter, 200, 10)
        log(f"latency: {args.latency_n} completions at concurrency 10")
        latency = await phase(target, meter, args.latency_n, 10)
        log(f"throughput: {args.throughput_n} completions at concurrency 100")
        throughput = await phase(target, meter, args.throughput_n, 100)
    finally:
        await stack.stop()
    targets = {
        "p50_ms_c10 <= 15": latency.get("p50_ms") is not None and latency["p50_ms"] <= 15,
        "p99_ms_c10 <= 60": latency.get("p99_ms") is not None and latency["p99_ms"] <= 60,
        "rps_c100 >= 300": throughput.get("rps", 0) >= 300,
    }
    return {
        "latency_c10": latency,
        "throughput_c100": throughput,
        "targets": targets,
        "met": all(targets.values()),
    }


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--latency-n", type=int, default=2000)
    own.add_argument("--throughput-n", type=int, default=4000)
    mine, rest = own.parse_known_args(argv)
    args = load_args(rest)
    args.latency_n, args.throughput_n = mine.latency_n, mine.throughput_n
    args.bare = False
    with contextlib.suppress(KeyboardInterrupt):
        report = asyncio.run(run(args))
        print(json.dumps(report, indent=2), flush=True)
        return 0 if report["met"] else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
