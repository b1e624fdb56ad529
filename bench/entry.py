"""The entry point of the benches that run on the load bench's managed stack (chat, waiters): their
own options on top of the load bench's, one JSON report on stdout, exit 1 when a target is missed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from bench.load import parse_args as load_args


def run_bench(
    own: argparse.ArgumentParser,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
) -> int:
    mine, rest = own.parse_known_args(argv)
    args = load_args(rest)
    vars(args).update(vars(mine))
    args.bare = False  # no side-by-side bare endpoint: these benches measure the service alone
    with contextlib.suppress(KeyboardInterrupt):
        report = asyncio.run(run(args))
        print(json.dumps(report, indent=2), flush=True)
        return 0 if report["met"] else 1
    return 130
