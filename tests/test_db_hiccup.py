"""A database hiccup (every connection of the service terminated) is a 503 with Retry-After, never a
500, and the connection pools heal by themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support import SEED_EXAMPLE, RunningService, make_settings, running_service

BODY = {"kind": "spreadsheet", **SEED_EXAMPLE}


@pytest.fixture
async def svc(postgres_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    async with running_service(make_settings(postgres_url, kafka_bootstrap), with_worker=False) as service:
        yield service


async def terminate_backends(database_url: str) -> int:
    """pg_terminate_backend on every other connection to the test database (what a failover, an
    administrator or a proxy restart does to the service)."""
    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
        return int(killed)
    finally:
        await admin.close()


def assert_ok_or_unavailable(response_status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert response_status in (200, 202, 503), (response_status, body)
    if response_status == 503:
        assert headers.get("retry-after"), headers
        assert body["error"]["code"] == "database_unavailable", body


async def test_terminated_connections_give_503_then_heal(svc: RunningService, postgres_url: str) -> None:
    # Warm every path up so the pools hold open connections that the terminate then breaks.
    first = await asyncio.gather(*(svc.submit(BODY) for _ in range(10)))
    assert all(r.status_code == 202 for r in first)
    request_id = first[0].json()["id"]
    assert (await svc.client.get("/api/v1/prompts")).status_code == 200

    assert await terminate_backends(postgres_url) > 0

    # Concurrent submits go through the group-commit path on broken connections.
    during = await asyncio.gather(*(svc.submit(BODY) for _ in range(20)))
    reads = await asyncio.gather(
        svc.client.get(f"/api/v1/requests/{request_id}"), svc.client.get("/api/v1/prompts")
    )
    for response in [*during, *reads]:
        assert_ok_or_unavailable(response.status_code, dict(response.headers), response.json())

    # The pools replace broken connections: within a few tries everything works again.
    for _ in range(20):
        after = await asyncio.gather(*(svc.submit(BODY) for _ in range(10)))
        status = await svc.client.get(f"/api/v1/requests/{request_id}")
        prompts = await svc.client.get("/api/v1/prompts")
        codes = {r.status_code for r in after} | {status.status_code, prompts.status_code}
        for response in [*after, status, prompts]:
            assert_ok_or_unavailable(response.status_code, dict(response.headers), response.json())
        if codes <= {200, 202}:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"still failing after the hiccup: {codes}")
