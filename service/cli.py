"""Script commands: `python -m service batch …` and `python -m service request …`, on service.client.

The service's URL and API key come from --url/--key or GIGAOFFICE_URL/GIGAOFFICE_API_KEY.
`batch submit --wait` shows a progress bar (done/failed/total, rate, ETA); Ctrl-C detaches
without cancelling and prints how to pick the batch up again.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from service.client import DEFAULT_URL, GigaOfficeClient, GigaOfficeError

_FINAL_LINE = ("completed", "failed", "cancelled", "expired")
err = Console(stderr=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _client(args: argparse.Namespace) -> GigaOfficeClient:
    return GigaOfficeClient(args.url, args.key)


def write_results(
    client: GigaOfficeClient, batch_id: str, out: str | None, errors: str | None
) -> tuple[int, int]:
    """Completed lines to `out`, the others to `errors` (or to `out` too when no errors file)."""
    written = failed = 0
    with ExitStack() as files:
        out_file: IO[bytes] = files.enter_context(open(out, "wb")) if out else sys.stdout.buffer
        err_file = files.enter_context(open(errors, "wb")) if errors else out_file
        for line in client.batch_results(batch_id):
            ok = line["status"] == "completed"
            (out_file if ok else err_file).write(orjson.dumps(line) + b"\n")
            written += ok
            failed += not ok
    return written, failed


def _wait_with_progress(client: GigaOfficeClient, batch: dict[str, Any]) -> dict[str, Any]:
    batch_id = batch["id"]
    columns = (
        TextColumn("[bold]batch[/] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]} lines/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(
            "batch", total=batch["counts"]["total"], status=batch["status"], failed=0, rate="0.0"
        )

        def show(view: dict[str, Any]) -> None:
            counts = view["counts"]
            done = sum(counts.get(status, 0) for status in _FINAL_LINE)
            failed = done - counts.get("completed", 0)
            speed = progress.tasks[0].speed or 0.0
            progress.update(task, completed=done, status=view["status"], failed=failed, rate=f"{speed:.1f}")

        return client.wait_batch(batch_id, on_progress=show)


def batch_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = client.create_batch(args.file, completion_window=args.window)
        try:
            return _follow(client, batch, args)
        except KeyboardInterrupt:
            batch_id = batch["id"]
            err.print(
                f"\nDetached; batch {batch_id} goes on running. Resume with:\n"
                f"  python -m service batch status {batch_id}\n"
                f"  python -m service batch results {batch_id} --out results.jsonl"
            )
            return 130


def _follow(client: GigaOfficeClient, batch: dict[str, Any], args: argparse.Namespace) -> int:
    batch_id = batch["id"]
    err.print(f"batch {batch_id}: {batch['status']}, {batch['counts']['total']} lines")
    if batch["status"] == "failed":
        for error in (batch.get("errors") or [])[:20]:
            err.print(f"  line {error.get('line')}: {error.get('code')}: {error.get('message')}")
        return 1
    if not args.wait:
        _print_json({"id": batch_id, "status": batch["status"]})
        return 0
    final = _wait_with_progress(client, batch)
    err.print(f"batch {batch_id}: {final['status']} {final['counts']}")
    if args.out or args.errors:
        written, failed = write_results(client, batch_id, args.out, args.errors)
        err.print(f"{written} result line(s) written, {failed} unsuccessful")
    return 0 if final["status"] == "completed" else 1


def batch_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.batch_status(args.id))
    return 0


def batch_results(args: argparse.Namespace) -> int:
    with _client(args) as client:
        written, failed = write_results(client, args.id, args.out, args.errors)
    err.print(f"{written} result line(s), {failed} unsuccessful")
    return 0


def batch_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.cancel_batch(args.id))
    return 0


def batch_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.list_batches(args.limit))
    return 0


def _read_body(source: str) -> Any:
    return orjson.loads(sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes())


def request_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        submitted = client.submit(_read_body(args.file))
        if not args.wait:
            _print_json(submitted)
            return 0
        status = client.wait(submitted["id"])
        _print_json(client.result(submitted["id"]) if status["status"] == "completed" else status)
        return 0 if status["status"] == "completed" else 1


def request_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.status(args.id))
    return 0


def request_result(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.result(args.id))
    return 0


def register(commands: Any) -> None:
    """Add `batch` and `request` to the CLI's sub-commands. They are clients of a running service:
    they need its URL and a key, never the server's settings."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=os.environ.get("GIGAOFFICE_URL", DEFAULT_URL), help="the service (GIGAOFFICE_URL)"
    )
    common.add_argument(
        "--key", default=os.environ.get("GIGAOFFICE_API_KEY"), help="API key (GIGAOFFICE_API_KEY)"
    )
    batch = commands.add_parser(
        "batch",
        help="Submit and follow batches: submit, status, results, cancel, list.",
        description=__doc__,
    ).add_subparsers(dest="action", required=True)
    submit = batch.add_parser("submit", parents=[common], help="submit a JSONL file (native or OpenAI lines)")
    submit.add_argument("file")
    submit.add_argument("--wait", action="store_true", help="show progress until the batch is final")
    submit.add_argument("--out", help="with --wait: write completed lines here")
    submit.add_argument("--errors", help="with --wait: write unsuccessful lines here")
    submit.add_argument("--window", default="24h", help="completion window, e.g. 24h")
    submit.set_defaults(client_command=batch_submit)
    for name, run, help_text in (
        ("status", batch_status, "status and counts"),
        ("cancel", batch_cancel, "cancel lines not started"),
    ):
        command = batch.add_parser(name, parents=[common], help=help_text)
        command.add_argument("id")
        command.set_defaults(client_command=run)
    results = batch.add_parser("results", parents=[common], help="results as JSONL, in line order")
    results.add_argument("id")
    results.add_argument("--out", help="file for completed lines (default: stdout)")
    results.add_argument("--errors", help="file for unsuccessful lines (default: with the others)")
    results.set_defaults(client_command=batch_results)
    listing = batch.add_parser("list", parents=[common], help="your latest batches")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(client_command=batch_list)

    request = commands.add_parser(
        "request", help="Single requests from scripts: submit, status, result.", description=__doc__
    ).add_subparsers(dest="action", required=True)
    one = request.add_parser(
        "submit", parents=[common], help="submit a JSON body from a file (or - for stdin)"
    )
    one.add_argument("file")
    one.add_argument("--wait", action="store_true", help="wait and print the result")
    one.set_defaults(client_command=request_submit)
    for name, run in (("status", request_status), ("result", request_result)):
        command = request.add_parser(name, parents=[common])
        command.add_argument("id")
        command.set_defaults(client_command=run)


def run(args: argparse.Namespace) -> int:
    """Run the client command chosen on the command line; errors become one clear line."""
    try:
        code: int = args.client_command(args)
        return code
    except GigaOfficeError as exc:
        err.print(f"[red]error[/] {exc.status} {exc.code}: {exc.message}")
        if isinstance(exc.details, list):
            for detail in exc.details[:20]:
                err.print(f"  {detail}")
        return 2
    except (OSError, ValueError, httpx.HTTPError) as exc:
        err.print(f"[red]error[/] {exc}")
        return 2
