"""The plugin's cell functions under a full sheet: 500 `=GIGA.TABLE` cells over 50 distinct ranges.

What `make run` runs (`python -m service up`: SQLite, the embedded broker, one worker, dryrun) with
a 200 ms dryrun latency, and the plugin's own code in headless Chromium, inside the editor
stand-in of the browser tests (tests/plugin/host.html): the cells are computed the way an editor
computes them, every call through the plugin's runtime (its keys, concurrency limit and Retry-After).

Prints one JSON object: the time until the last cell is filled, the requests the service received
(target: 50, one per distinct call), and the 429 answers the plugin saw (target: 0); exit 1 when a
target is missed.

    python -m bench.plugin [--cells 500] [--ranges 50] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

# The browser tests' harness: the same service start-up and the same editor stand-in.
from tests.plugin.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Service,
    create_key,
    open_editor,
    start_service,
    stop,
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-plugin-") as tmp:
        process, env, url = start_service(
            Path(tmp), concurrency=args.worker_concurrency, DRYRUN_LATENCY_MS=str(args.latency_ms)
        )
        try:
            service = Service(url, create_key(env, "bench-plugin"), env)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    context, editor = open_editor(browser, service)
                    rows = [["Товар", "Сумма"]] + [[f"Товар {i}", i * 10] for i in range(1, args.ranges + 1)]
                    editor.fill_sheet("A1", rows)
                    question = "Какой товар продавался лучше всего?"
                    formulas = {
                        f"D{cell + 1}": f'=GIGA.TABLE("{question}"; A1:B{cell % args.ranges + 2})'
                        for cell in range(args.cells)
                    }
                    before = service.requests_received()
                    started = time.perf_counter()
                    editor.js(
                        "fs => Promise.all(Object.entries(fs).map(([c, f]) => Sheet.setFormula(c, f)))",
                        formulas,
                    )
                    elapsed = time.perf_counter() - started
                    values = editor.js("cells => cells.map(c => Sheet.get(c))", list(formulas))
                    statuses = editor.js("() => GigaOfficeCells.statuses")
                    received = service.requests_received() - before
                    context.close()
                finally:
                    browser.close()
        finally:
            stop(process)
    errors = [value for value in values if not value or str(value).startswith("#")]
    too_many = int(statuses.get("429", 0))
    met = received == args.ranges and too_many == 0 and not errors
    return {
        "bench": "plugin",
        "cells": args.cells,
        "distinct_ranges": args.ranges,
        "dryrun_latency_ms": args.latency_ms,
        "seconds_to_last_cell": round(elapsed, 2),
        "requests_received": received,
        "requests_target": args.ranges,
        "http_429_seen": too_many,
        "http_statuses_seen": statuses,
        "cells_with_errors": len(errors),
        "met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--ranges", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument(
        "--worker-concurrency", type=int, default=64, help="as `make run` (WORKER_CONCURRENCY)"
    )
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2), flush=True)
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
