# ruff: noqa: E501  (SQL and report lines read better unbroken)
"""The operator console at scale: every page and filter over 1,000,000 request rows.

    python -m bench.console [--rows 1000000] [--runs 30] [--keep-db]

1. A fresh PostgreSQL database (127.0.0.1:5432, trust auth; BENCH_PG_URL to change), migrated and
   seeded; 20 user keys and an admin key; ROWS request rows written straight by the server
   (INSERT … SELECT over generate_series: no client round trip per row) spread over 90 days, every
   status, kind and category, 10 % of them batch lines; 20,000 ratings; then VACUUM ANALYZE.
2. The API application in-process (its lifespan, an embedded broker) signed in to the console
   as the admin and as one user; each page is asked for `--runs` times after 3 warm-ups, and its
   time inside the application is measured (no network: server-side).
3. EXPLAIN (ANALYZE, BUFFERS) of the SQL behind the pages: printed, and checked for a sequential
   scan of `requests`.

Target: p95 ≤ 200 ms for every page and filter, no sequential scan. Exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from service.app import create_app
from service.config import Settings
from service.db import console_repo
from service.db.migrate import upgrade_to_head
from service.db.models import utcnow
from service.db.session import create_engine, create_session_factory
from service.messaging.embedded import EmbeddedBroker
from service.pipeline.resources import shipped_resources
from service.seeding import seed
from service.usecases.keys import create_key

TARGET_P95_MS = 200.0
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
CATEGORIES = (
    "spreadsheet-analysis", "spreadsheet-transformation", "spreadsheet-generation", "spreadsheet-search",
    "spreadsheet-formatting", "data-chart", "data-histogram", "spreadsheet-assistance", "process-analysis",
)  # fmt: skip


def log(message: str) -> None:
    print(f"[bench.console] {message}", file=sys.stderr, flush=True)


BATCHES = [uuid.uuid4() for _ in range(20)]


def batches_sql(owners: list[str], rows: int) -> str:
    """The batches the generated lines belong to: two still running, the rest finished (their counts
    frozen, as a finished batch keeps them)."""
    values = []
    for number, batch_id in enumerate(BATCHES):
        running = number < 2
        status = "in_progress" if running else "completed"
        total = rows // 10 // len(BATCHES)
        counts = "NULL" if running else f'\'{{"total": {total}, "completed": {total}}}\'::jsonb'
        values.append(
            f"('{batch_id}', '{owners[number % len(owners)]}', '/api/v1/requests', 'native', '24h', '{status}', "
            f"{total}, {counts}, now() - interval '{number} days', now() + interval '1 day')"
        )
    return (
        "INSERT INTO batches (id, owner_id, endpoint, surface, completion_window, status, total, final_counts, "
        "created_at, expires_at) VALUES " + ", ".join(values)
    )


def generate_sql(rows: int, owners: list[str]) -> str:
    """One statement: the server makes every row. Ages are spread over 90 days (newest first in
    id order does not matter: the console orders by created_at)."""
    owner_array = "(ARRAY[" + ",".join(f"'{o}'" for o in owners) + "])"
    category_array = "(ARRAY[" + ",".join(f"'{c}'" for c in CATEGORIES) + "])"
    batches = "(ARRAY[" + ",".join(f"'{b}'::uuid" for b in BATCHES) + "])"
    return f"""
    INSERT INTO requests (
        id, kind, status, category, title, description, prompt_tokens, completion_tokens, total_tokens,
        tokens_estimated, llm_calls, llm_latency_ms, llm_backend, llm_model, template_version, attempts,
        owner_id, batch_id, priority, created_at, updated_at, started_at, finished_at, error_code,
        error_message
    )
    SELECT
        gen_random_uuid(),
        (ARRAY['spreadsheet','process_analysis','chat'])[1 + (n % 3)],
        s.status,
        CASE WHEN n % 3 = 2 THEN NULL ELSE {category_array}[1 + (n / 3) % {len(CATEGORIES)}] END,
        'bench ' || n, 'generated row',
        p, c, p + c, false, 1, 400 + (n % 900), 'gigachat-cloud',
        (ARRAY['GigaChat','GigaChat-Pro','GigaChat-Max'])[1 + (n / 7) % 3],
        1 + (n / 11) % 3,
        1,
        {owner_array}[1 + (n / 13) % {len(owners)}],
        CASE WHEN n % 10 = 0 THEN {batches}[1 + (n / 10) % 20] END,
        'normal',
        t.created, t.created + interval '2 seconds',
        CASE WHEN s.status <> 'queued' THEN t.created + interval '1 second' END,
        CASE WHEN s.status IN ('completed','failed','cancelled','expired')
             THEN t.created + (interval '1 millisecond' * (800 + (n::bigint * 37) % 9000)) END,
        CASE WHEN s.status = 'failed' THEN (ARRAY['answer_invalid','llm_timeout','rate_limited'])[1 + n % 3] END,
        CASE WHEN s.status = 'failed' THEN 'generated failure' END
    FROM generate_series(1, {rows}) AS n,
    LATERAL (SELECT 200 + (n::bigint * 7919) % 1800 AS p, 50 + (n::bigint * 104729) % 700 AS c) AS tokens,
    LATERAL (SELECT now() - (interval '90 days' * ((n * 2654435761) % {rows})::float8 / {rows}) AS created) AS t,
    LATERAL (SELECT CASE
        WHEN n % 1000 = 1 THEN 'queued'
        WHEN n % 1000 = 2 THEN 'processing'
        WHEN n % 100 < 4 THEN 'failed'
        WHEN n % 100 = 5 THEN 'cancelled'
        WHEN n % 200 = 7 THEN 'expired'
        ELSE 'completed' END AS status) AS s
    """


async def build_database(url: str, rows: int) -> tuple[Settings, str, list[str]]:
    admin_conn = await asyncpg.connect(PG_URL.replace("+asyncpg", "") + "/postgres")
    name = url.rsplit("/", 1)[1]
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    await admin_conn.close()
    await asyncio.to_thread(upgrade_to_head, url)
    settings = Settings(_env_file=None, database_url=url, db_pool_size=5)  # type: ignore[call-arg]
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    secrets: list[str] = []
    async with sessions() as session:
        await seed(session, shipped_resources())
        admin = await create_key(session, "bench admin", "admin")
        secrets.append(admin.secret)
        for number in range(20):
            user = await create_key(
                session, f"bench user {number}", daily_tokens=10**9, monthly_tokens=2 * 10**9
            )
            secrets.append(user.secret)
        await session.commit()
    await engine.dispose()
    owners = [secret.split("_")[1] for secret in secrets[1:]]
    raw = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        started = time.perf_counter()
        await raw.execute("SET synchronous_commit = off")
        await raw.execute(generate_sql(rows, owners))
        await raw.execute(batches_sql(owners, rows))
        # As the sweeper would: nothing stays queued or processing beyond its time to live (a day).
        await raw.execute(
            "UPDATE requests SET status = 'expired', error_code = 'expired', finished_at = created_at + interval '1 day' "
            "WHERE status IN ('queued', 'processing') AND created_at < now() - interval '1 day'"
        )
        await raw.execute(
            """INSERT INTO feedback (id, request_id, owner_id, rating, created_at, updated_at)
               SELECT gen_random_uuid(), id, owner_id, CASE WHEN random() < 0.7 THEN 'good' ELSE 'bad' END,
                      now(), now()
               FROM requests WHERE status = 'completed' AND category IS NOT NULL LIMIT 20000"""
        )
        log(f"{rows:,} rows written in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …")
        await raw.execute("VACUUM ANALYZE requests")
        await raw.execute("VACUUM ANALYZE feedback")
        sample = await raw.fetchval(
            "SELECT id FROM requests WHERE status = 'failed' ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await raw.close()
    return settings, str(sample), secrets


async def reuse_database(url: str) -> tuple[Settings, str, list[str]]:
    """A database a --keep-db run left: new keys to sign in with (the old secrets are gone)."""
    await asyncio.to_thread(upgrade_to_head, url)
    settings = Settings(_env_file=None, database_url=url, db_pool_size=5)  # type: ignore[call-arg]
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            admin = await create_key(session, "bench admin again", "admin")
            await session.commit()
            raw = await (await session.connection()).exec_driver_sql(
                "SELECT owner_id FROM requests WHERE owner_id IS NOT NULL GROUP BY owner_id LIMIT 1"
            )
            owner = raw.scalar_one()
            failed = await (await session.connection()).exec_driver_sql(
                "SELECT id FROM requests WHERE status = 'failed' ORDER BY created_at DESC LIMIT 1"
            )
            failed_id = str(failed.scalar_one())
    finally:
        await engine.dispose()
    # The old secrets are gone: a new user key takes over one owner's rows (its usage sums go too).
    async with create_session_factory(create_engine(settings))() as session:
        user = await create_key(session, "bench user again")
        connection = await session.connection()
        await connection.exec_driver_sql(
            f"UPDATE requests SET owner_id = '{user.row.id}' WHERE owner_id = '{owner}'"
        )
        await connection.exec_driver_sql("DELETE FROM usage_days")
        await connection.exec_driver_sql("DELETE FROM usage_days_rolled")
        await session.commit()
    raw = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await raw.execute("VACUUM ANALYZE requests")  # the re-keyed rows, as autovacuum would
    finally:
        await raw.close()
    log(f"reusing {url.rsplit('/', 1)[1]} (owner {owner})")
    return settings, failed_id, [admin.secret, user.secret]


async def signed_in(app: Any, key: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60)
    await client.get("/console/signin")
    form = {"csrf_token": client.cookies["gigaoffice_console_signin"], "api_key": key, "next": "/console"}
    response = await client.post("/console/signin", data=form)
    assert response.status_code == 303, response.text
    return client


async def time_page(client: httpx.AsyncClient, path: str, runs: int) -> dict[str, Any]:
    for _ in range(3):
        warm = await client.get(path)
        if warm.status_code != 200:
            raise RuntimeError(f"{path}: {warm.status_code} {warm.text[:300]}")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, path
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    return {"path": path, "p50_ms": statistics.median(samples), "p95_ms": p95, "ok": p95 <= TARGET_P95_MS}


def _sql(session: AsyncSession, statement: Select[Any]) -> tuple[str, tuple[Any, ...]]:
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    return str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ())


async def explain(session: AsyncSession, label: str, statement: Select[Any]) -> bool:
    sql, params = _sql(session, statement)
    connection = await session.connection()
    result = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
    plan = "\n".join(row[0] for row in result.all())
    scans = re.findall(r"Seq Scan on requests", plan)
    print(f"\n--- {label}{'  ** SEQUENTIAL SCAN **' if scans else ''}\n{plan}")
    return not scans


async def plans(settings: Settings, owner: str) -> bool:
    engine = create_engine(settings)
    now = utcnow()
    good = True
    try:
        async with create_session_factory(engine)() as session:
            listing = console_repo.listing_statement
            F = console_repo.RequestFilter
            checks: list[tuple[str, Select[Any]]] = [
                ("requests: newest first", listing(F(), None, 51)),
                ("requests: status=failed", listing(F(status="failed"), None, 51)),
                ("requests: kind=chat", listing(F(kind="chat"), None, 51)),
                ("requests: category=data-chart", listing(F(category="data-chart"), None, 51)),
                ("requests: owner", listing(F(owner_id=owner), None, 51)),
                ("requests: owner + status=failed", listing(F(owner_id=owner, status="failed"), None, 51)),
                ("requests: a week 30 days ago", listing(F(since=now - timedelta(days=30), until=now - timedelta(days=23)), None, 51)),
                ("requests: page 2 (keyset)", listing(F(status="completed"), (now - timedelta(days=3), uuid.uuid4()), 51)),
                ("usage: open days, live (by day, key, model)", console_repo.live_usage_statement(session, None, now - timedelta(days=1))),
                ("usage: one closed day summed once", console_repo.day_sums_statement((now - timedelta(days=40)).date())),
                ("prompts: figures per version", console_repo.version_statement("data-chart", now - timedelta(days=30))),
            ]  # fmt: skip
            for label, statement in checks:
                good &= await explain(session, label, statement)
    finally:
        await engine.dispose()
    return good


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the database for a later --database run"
    )
    parser.add_argument("--database", help="time an existing bench database (from --keep-db) instead")
    args = parser.parse_args()
    url = f"{PG_URL}/{args.database or 'bench_console_' + uuid.uuid4().hex[:10]}"
    broker = EmbeddedBroker()
    broker.start()
    try:
        if args.database:
            base, failed_id, secrets = await reuse_database(url)
        else:
            log(f"database {url.rsplit('/', 1)[1]}: generating {args.rows:,} rows")
            base, failed_id, secrets = await build_database(url, args.rows)
        settings = base.model_copy(
            update={
                "kafka_bootstrap_servers": broker.bootstrap_servers,
                "llm_backend": "dryrun",
                "log_level": "WARNING",
            }
        )
        app = create_app(settings)
        results = []
        async with app.router.lifespan_context(app):
            admin = await signed_in(app, secrets[0])
            user = await signed_in(app, secrets[1])
            owner = secrets[1].split("_")[1]
            month_ago = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
            three_weeks = (utcnow() - timedelta(days=23)).strftime("%Y-%m-%dT%H:%M")
            second_page = re.search(
                r"before=([0-9a-f-]{36})", (await admin.get("/console/requests?status=completed")).text
            )
            pages = [
                (admin, "/console"),
                (admin, "/console/overview/live"),
                (admin, "/console/requests"),
                (admin, "/console/requests?status=failed"),
                (admin, "/console/requests?kind=chat"),
                (admin, "/console/requests?category=data-chart"),
                (admin, f"/console/requests?owner={owner}"),
                (admin, f"/console/requests?owner={owner}&status=expired&category=process-analysis"),
                (admin, f"/console/requests?since={month_ago}&until={three_weeks}"),
                (
                    admin,
                    f"/console/requests?status=completed&before={second_page.group(1) if second_page else ''}",
                ),
                (admin, f"/console/requests/{failed_id}"),
                (admin, "/console/keys"),
                (admin, "/console/usage?days=1"),
                (admin, "/console/usage?days=7"),
                (admin, "/console/usage?days=30"),
                (admin, "/console/usage?days=90"),
                (admin, "/console/usage.csv?days=90"),
                (admin, "/console/batches"),
                (admin, "/console/prompts"),
                (admin, "/console/prompts/data-chart/ru"),
                (admin, "/console/webhooks"),
                (user, "/console"),
                (user, "/console/requests"),
                (user, "/console/requests?status=failed"),
                (user, "/console/usage?days=7"),
                (user, "/console/usage?days=90"),
            ]
            for client, path in pages:
                # The first view of a long period sums its closed days once (usage_days); that view
                # is timed apart, the runs after it are the page as operators see it.
                if "usage" in path:
                    started = time.perf_counter()
                    await client.get(path)
                    log(f"first view of {path}: {(time.perf_counter() - started) * 1000:.0f} ms")
                result = await time_page(client, path, args.runs)
                result["as"] = "admin" if client is admin else "user"
                results.append(result)
                log(
                    f"{result['as']:5} {path[:90]:90} p50 {result['p50_ms']:7.1f} ms  p95 {result['p95_ms']:7.1f} ms"
                )
            await admin.aclose()
            await user.aclose()
        indexed = await plans(settings, owner)
    finally:
        broker.stop()
        if not args.keep_db and not args.database:
            admin_conn = await asyncpg.connect(PG_URL.replace("+asyncpg", "") + "/postgres")
            await admin_conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin_conn.close()
    misses = [r for r in results if not r["ok"]]
    print(f"\n{len(results)} pages, target p95 ≤ {TARGET_P95_MS:.0f} ms server-side over {args.rows:,} rows")
    print(f"{'as':5} {'page':92} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(
            f"{r['as']:5} {r['path'][:92]:92} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f}{'' if r['ok'] else '  MISS'}"
        )
    print(f"sequential scans of requests: {'none' if indexed else 'FOUND'}")
    return 0 if not misses and indexed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
