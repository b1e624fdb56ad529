"""The OpenAI-compatible front door under load: `POST /v1/chat/completions` through the queue.

    python -m bench.chat [--latency-n 2000] [--throughput-n 4000] [--via chat|prefer-wait]

Managed stack (PostgreSQL database, embedded broker, one api, one worker), the dryrun backend with
zero latency. Two phases: latency at concurrency 10 (target p50 ≤ 15 ms, p99 ≤ 60 ms end to end),
throughput at concurrency 100 (target ≥ 300 completions/s). Every answer must be a 200
`chat.completion`; anything else is counted and reported. `--via prefer-wait` measures the same
path with `POST /api/v1/requests` + `Prefer: wait=30` (a spreadsheet request; 200 = finished).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from bench.entry import run_bench
from bench.httpclient import build_request
from bench.loadgen import Target, run_load
from bench.measure import CpuMeter, log
from bench.stack import ManagedStack

CHAT_PATH = "/v1/chat/completions"
BODY = {"model": "dryrun", "messages": [{"role": "user", "content": "Say hello in one word."}]}
# --via prefer-wait: a small spreadsheet request, answered when final.
SPREADSHEET = {
    "kind": "spreadsheet",
    "query_text": "Sum each column",
    "input_range": "A1:B3",
    "category": "analysis",
    "input_data": [["a", "b"], [1, 2], [3, 4]],
}


def request_bytes(target: Target, via: str) -> tuple[bytes, bytes]:
    """The request to send, and what a good answer contains."""
    host = target.host_header()
    if via == "prefer-wait":
        headers = {**target.headers, "Prefer": "wait=30"}
        return build_request(
            "POST", "/api/v1/requests", host, orjson.dumps(SPREADSHEET), headers=headers
        ), b'"completed"'
    return build_request(
        "POST", CHAT_PATH, host, orjson.dumps(BODY), headers=target.headers
    ), b'"chat.completion"'


async def phase(target: Target, meter: CpuMeter, total: int, concurrency: int, via: str) -> dict[str, Any]:
    raw, good = request_bytes(target, via)
    bad: dict[str, int] = {}

    def check(_index: int, status: int, body: bytes) -> None:
        if status != 200 or good not in body:
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
        await phase(target, meter, 200, 10, args.via)
        log(f"latency: {args.latency_n} completions at concurrency 10")
        latency = await phase(target, meter, args.latency_n, 10, args.via)
        log(f"throughput: {args.throughput_n} completions at concurrency 100")
        throughput = await phase(target, meter, args.throughput_n, 100, args.via)
    finally:
        await stack.stop()
    targets = {
        "p50_ms_c10 <= 15": latency.get("p50_ms") is not None and latency["p50_ms"] <= 15,
        "p99_ms_c10 <= 60": latency.get("p99_ms") is not None and latency["p99_ms"] <= 60,
        "rps_c100 >= 300": throughput.get("rps", 0) >= 300,
    }
    return {
        "via": args.via,
        "latency_c10": latency,
        "throughput_c100": throughput,
        "targets": targets,
        "met": all(targets.values()),
    }


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--latency-n", type=int, default=2000)
    own.add_argument("--throughput-n", type=int, default=4000)
    own.add_argument("--via", choices=("chat", "prefer-wait"), default="chat")
    return run_bench(own, argv, run)


if __name__ == "__main__":
    sys.exit(main())
