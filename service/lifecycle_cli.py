"""`python -m service purge | export OWNER | erase OWNER`: the data lifecycle's operator commands
(docs/lifecycle.md). Each is a unit of work of its own (or a series of short ones)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from service.config import Settings
from service.db.unit_of_work import transaction
from service.runtime import open_runtime
from service.usecases import audit, owner_data, retention


def register(commands: Any) -> None:
    purge = commands.add_parser(
        "purge", help="Delete what outlived RETENTION_DAYS now (the sweeper does it a share at a time)."
    )
    purge.add_argument("--max-rows", type=int, default=None, help="stop after this many requests")
    purge.set_defaults(server_command=run_purge)
    export = commands.add_parser("export", help="Write everything of one owner as JSONL (stdout or --out).")
    export.add_argument("owner_id")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(server_command=run_export)
    erase = commands.add_parser("erase", help="Erase everything of one owner (idempotent; audited).")
    erase.add_argument("owner_id")
    erase.set_defaults(server_command=run_erase)


def run_purge(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> retention.PurgeReport:
        async with open_runtime(settings, role="cli") as rt:
            return await retention.purge(rt.sessions, settings, max_rows=args.max_rows)

    report = asyncio.run(go())
    print(
        f"purged {report.requests} requests, {report.batches} batches, {report.files} files "
        f"in {report.seconds:.2f}s ({report.rate():.0f} requests/s, {report.transactions} transactions)"
    )
    return 0


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    async def go(out: TextIO) -> int:
        lines = 0
        async with open_runtime(settings, role="cli") as rt:
            async with transaction(rt.sessions) as session:
                audit.record(session, audit.CLI, "owner.exported", "owner", args.owner_id)
            async for line in owner_data.export_lines(rt.sessions, args.owner_id):
                out.write(line)
                lines += 1
        return lines

    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            lines = asyncio.run(go(out))
    else:
        lines = asyncio.run(go(sys.stdout))
    print(f"exported {lines} rows of owner {args.owner_id}", file=sys.stderr)
    return 0


def run_erase(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> dict[str, int]:
        async with open_runtime(settings, role="cli") as rt:
            return await owner_data.erase(rt.sessions, args.owner_id, audit.CLI)

    deleted = asyncio.run(go())
    print(f"erased owner {args.owner_id}: {deleted or 'nothing left to erase'}")
    return 0
