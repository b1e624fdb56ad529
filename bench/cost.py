"""Billed tokens of a spreadsheet workload, counted by the GigaChat peer (issue 17).

1,000 spreadsheet requests over 100 distinct inputs in 3 categories, of one owner, arrive as sheet
recalculations would: 10 recalculations of the same 100 cells, each firing its cells at once and
starting before the previous one has finished, so identical requests are in flight together.
They go through the worker's processing step (service/usecases/processing.py: prompt, answer
cache with single flight, GigaChat backend over TLS) on TWO worker runtimes (each its own engine,
processor and backend client) sharing one migrated database; the broker and the API are left out,
as they change nothing about what the model is asked. The local GigaChat peer counts what it
answers and keeps a prompt cache per X-Session-ID, as GigaChat does.

Configurations: naive (no answer cache, no sessions), cache, cache + session caching.
Targets: cache + sessions bill >= 85 % fewer prompt tokens than naive; 0 duplicate LLM calls
(calls beyond one per distinct input) while identical requests run concurrently. Exit 1 on a miss.

    .venv/bin/python -m bench.cost [--database-url sqlite+aiosqlite:///...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.config import Settings
from service.db.migrate import upgrade_to_head
from service.db.requests_repo import ClaimedRequest
from service.db.session import create_engine, create_session_factory
from service.llm.registry import build_backend
from service.usecases.processing import Outcome, Processor
from tests.peers.certs import generate_certs
from tests.peers.fixtures import cloud_values
from tests.peers.gigachat_server import GigaChatPeer, gigachat_peer

CATEGORIES = ("spreadsheet-analysis", "spreadsheet-transformation", "spreadsheet-generation")
DISTINCT, RECALCULATIONS = 100, 10
OWNER = "sheet-owner"
ANSWER = '{"values": [["Итого", "=SUM(B2:B10)"]], "text": "Итог по столбцу"}'


def cells() -> list[tuple[str, str, list[list[Any]]]]:
    """100 distinct inputs: (category, question, data), ~a third per category."""
    out = []
    for n in range(DISTINCT):
        data = [["Товар", "Январь", "Февраль"], *([f"Товар {n}-{r}", 100 + n + r, 90 + r] for r in range(4))]
        out.append((CATEGORIES[n % 3], f"Посчитай итог по строкам для блока {n}", data))
    return out


def claimed(category: str, question: str, data: list[list[Any]]) -> ClaimedRequest:
    now = datetime.now(UTC)
    return ClaimedRequest(
        id=uuid.uuid4(), kind="spreadsheet", category=category, query_text=question, input_range="A1:C5",
        input_data=data, title=None, description=None, options=None, attempts=1, owner_id=OWNER,
        batch_id=None, created_at=now, started_at=now,
    )  # fmt: skip


async def run(
    name: str, database_url: str, peer: GigaChatPeer, values: dict[str, Any], **knobs: Any
) -> dict[str, Any]:
    peer.reset()
    peer.reply_text = ANSWER
    peer.faults.delay_seconds = 0.05  # a model takes a while: recalculations overlap
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url, llm_max_attempts=1, allow_anonymous=True, **values, **knobs,
    )  # fmt: skip
    workers = []
    for _ in range(2):
        engine = create_engine(settings)
        backend = build_backend(settings)
        await backend.start()
        workers.append((engine, backend, Processor(settings, backend, create_session_factory(engine))))
    outcomes: list[Outcome] = []
    sheet = cells()

    async def recalculate(index: int) -> None:
        await asyncio.sleep(index * 0.02)  # the next recalculation starts while this one runs
        batch = [workers[(index + i) % 2][2].process(claimed(*cell)) for i, cell in enumerate(sheet)]
        outcomes.extend(await asyncio.gather(*batch))

    try:
        await asyncio.gather(*(recalculate(i) for i in range(RECALCULATIONS)))
    finally:
        for engine, backend, _ in workers:
            await backend.close()
            await engine.dispose()
    failed = [o for o in outcomes if not o.ok]
    billed = dict(peer.billed)
    prompts = [str(call.body.get("messages")) for call in peer.calls_to("/chat/completions")]
    return {
        "config": name,
        "requests": len(outcomes),
        "failed": len(failed),
        "llm_calls": billed.get("calls", 0),
        "prompt_tokens": billed.get("prompt_tokens", 0),
        "cached_prompt_tokens": billed.get("cached_tokens", 0),
        "billed_prompt_tokens": billed.get("prompt_tokens", 0) - billed.get("cached_tokens", 0),
        "completion_tokens": billed.get("completion_tokens", 0),
        "duplicate_calls": len(prompts) - len(set(prompts)),
        "cache_hits": sum(1 for o in outcomes if o.accounting.cached_from is not None),
        "first_failure": failed[0].error_message if failed else None,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file per configuration")
    args = parser.parse_args()
    rows = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cost-bench-")))
        certs = generate_certs(tmp / "pki")
        peer = stack.enter_context(gigachat_peer(certs))
        values = cloud_values(peer, certs)
        for name, knobs in (
            ("naive", {"answer_cache": False, "gigachat_session_cache": False}),
            ("cache", {"answer_cache": True, "gigachat_session_cache": False}),
            ("cache+sessions", {"answer_cache": True, "gigachat_session_cache": True}),
        ):
            url = args.database_url or f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
            await asyncio.to_thread(upgrade_to_head, url)
            rows.append(await run(name, url, peer, values, **knobs))
    columns = ("config", "requests", "failed", "llm_calls", "prompt_tokens", "cached_prompt_tokens",
               "billed_prompt_tokens", "completion_tokens", "duplicate_calls", "cache_hits")  # fmt: skip
    print(" | ".join(f"{c:>20}" for c in columns))
    for row in rows:
        print(" | ".join(f"{row[c]!s:>20}" for c in columns))
    naive, best = rows[0], rows[-1]
    saved = 1 - best["billed_prompt_tokens"] / naive["billed_prompt_tokens"]
    print(f"billed prompt tokens, cache + sessions vs naive: {saved:.1%} fewer (target >= 85%)")
    misses = []
    if saved < 0.85:
        misses.append(f"billed prompt tokens only {saved:.1%} fewer")
    for row in rows[1:]:
        if row["duplicate_calls"]:
            misses.append(f"{row['config']}: {row['duplicate_calls']} duplicate LLM calls")
    for row in rows:
        if row["failed"]:
            misses.append(f"{row['config']}: {row['failed']} failed ({row['first_failure']})")
    for miss in misses:
        print("MISS:", miss)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
