"""A running service with data in it, served over real HTTP, and a headless Chromium to drive it.

The API and a worker run in-process (tests/support.py) on a database of this package's own; uvicorn
serves the same application on a free loopback port so the browser talks HTTP to it like an
operator would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from service.db import requests_repo, webhooks_repo
from service.db.models import utcnow
from service.pipeline.resources import shipped_resources
from service.seeding import seed
from tests.conftest import fresh_postgres_database
from tests.support import (
    PROCESS_EXAMPLE,
    SEED_EXAMPLE,
    RunningService,
    bearer,
    issue_key,
    make_settings,
    running_service,
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}
REPO = Path(__file__).resolve().parents[2]
# Every run saves a screenshot of every page; into the committed docs/screenshots only when asked
# (CONSOLE_SCREENSHOTS=docs/screenshots), so that a test run leaves the checkout as it was.
SCREENSHOTS = (
    REPO / os.environ["CONSOLE_SCREENSHOTS"]
    if os.environ.get("CONSOLE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "gigaoffice-console-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@dataclass
class Console:
    svc: RunningService
    url: str
    admin_key: str
    key_a: str
    key_b: str
    owner_a: str
    owner_b: str
    ids: dict[str, Any]  # what the data set holds: request ids by role, batch, endpoint, delivery


def owner_of(key: str) -> str:
    return key.split("_")[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _submit(svc: RunningService, key: str, body: dict[str, Any]) -> str:
    response = await svc.client.post("/api/v1/requests", json=body, headers=bearer(key))
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def _insert(svc: RunningService, owner: str, **values: Any) -> str:
    """A row straight into the table (a request no worker will pick up: queued, or failed)."""
    request_id = uuid.uuid4()
    async with svc.sessions() as session:
        await requests_repo.insert_request(
            session,
            {"id": request_id, "kind": "process_analysis", "owner_id": owner, "category": "process-analysis",
             "title": "Inserted", "description": "A row the tests put in directly."},
        )  # fmt: skip
        await session.commit()
    if values:
        await svc.backdate(str(request_id), **values)
    return str(request_id)


async def _data(svc: RunningService, admin: str, key_a: str, key_b: str) -> dict[str, Any]:
    async with svc.sessions() as session:
        await seed(session, shipped_resources())
        await session.commit()
    ids: dict[str, Any] = {}
    ids["a"] = [await _submit(svc, key_a, body) for body in (SPREADSHEET, PROCESS_EXAMPLE, PROCESS_EXAMPLE)]
    ids["b"] = [await _submit(svc, key_b, body) for body in (SPREADSHEET, PROCESS_EXAMPLE)]
    for key, request_id in [(key_a, i) for i in ids["a"]] + [(key_b, i) for i in ids["b"]]:
        final = await svc.client.get(f"/api/v1/requests/{request_id}?wait=60", headers=bearer(key))
        assert final.json()["status"] == "completed", final.text
    rated = await svc.client.post(
        f"/api/v1/requests/{ids['a'][0]}/feedback",
        json={"rating": "good", "comment": "spot on"},
        headers=bearer(key_a),
    )
    assert rated.status_code in (200, 201), rated.text
    ids["queued_a"] = await _insert(svc, owner_of(key_a))
    now = utcnow()
    ids["failed_a"] = await _insert(
        svc,
        owner_of(key_a),
        status="failed",
        error_code="answer_invalid",
        error_message="The model's answer was invalid: no JSON object",
        attempts=1,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
    )
    batch = await svc.client.post(
        "/api/v1/batches",
        json=[{"custom_id": f"c{n}", **PROCESS_EXAMPLE, "title": f"Process {n}"} for n in range(3)],
        headers=bearer(key_a),
    )
    assert batch.status_code == 201, batch.text
    ids["batch_a"] = batch.json()["id"]
    endpoint = await svc.client.post(
        "/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=bearer(key_a)
    )
    assert endpoint.status_code == 201, endpoint.text
    ids["endpoint_a"] = endpoint.json()["id"]
    ids["delivery_a"] = f"msg_{uuid.uuid4().hex}"
    async with svc.sessions() as session:
        await webhooks_repo.enqueue(
            session,
            [
                {
                    "id": ids["delivery_a"],
                    "endpoint_id": uuid.UUID(ids["endpoint_a"]),
                    "event_key": f"{ids['a'][0]}:completed",
                    "event_type": "request.completed",
                    "request_id": uuid.UUID(ids["a"][0]),
                    "payload": "{}",
                    "state": "failed",
                    "attempts": 3,
                    "last_status_code": 503,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            ],
        )
        await session.commit()
    return ids


@pytest.fixture(scope="package")
async def console_database() -> AsyncIterator[str]:
    """Batches of their own: a worker's batch feeder releases every open batch it finds."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="package", name="console")
async def running_console(console_database: str, kafka_bootstrap: str) -> AsyncIterator[Console]:
    settings = make_settings(
        console_database,
        kafka_bootstrap,
        allow_anonymous=False,
        webhook_allow_private_targets=True,
        llm_price_per_1k_tokens={"dryrun": 0.2},
        console_signin_failures_per_minute=3,
    )
    admin = await issue_key(settings, "operator", "admin")
    key_a = await issue_key(settings, "team A", daily_tokens=50_000, monthly_tokens=1_000_000)
    key_b = await issue_key(settings, "team B")
    async with running_service(settings) as svc:
        ids = await _data(svc, admin, key_a, key_b)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(svc.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        for _ in range(200):  # uvicorn offers no event for "listening"
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            yield Console(
                svc, f"http://127.0.0.1:{port}", admin, key_a, key_b, owner_of(key_a), owner_of(key_b), ids
            )
        finally:
            server.should_exit = True
            await task


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
