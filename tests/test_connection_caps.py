"""Per-owner caps on held connections: long-polls and SSE streams past the cap get 429 with
Retry-After, other owners are not affected, and every slot comes back when its connection ends.
No worker runs: requests stay queued, so every wait lasts as long as it is allowed to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.support import SEED_EXAMPLE, RunningService, bearer, issue_key, make_settings, running_service

SUBMIT = {"kind": "spreadsheet", **SEED_EXAMPLE}


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def held_by(
    svc: RunningService, kind: str, owner: str, calls: list[Callable[[], Awaitable[httpx.Response]]]
) -> list[asyncio.Task[httpx.Response]]:
    """Starts the calls and returns once each of them holds its slot."""
    tasks = [asyncio.create_task(call()) for call in calls]
    caps = svc.app.state.runtime.connections
    await until(lambda: caps.open_count(kind, owner) == len(calls))
    return tasks


def _settings(postgres_url: str, kafka_bootstrap: str, **values: Any) -> Any:
    return make_settings(
        postgres_url,
        kafka_bootstrap,
        allow_anonymous=False,
        long_poll_max_per_owner=2,
        sse_max_streams_per_owner=2,
        **values,
    )


async def test_long_polls_past_the_owners_cap_get_429(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = _settings(postgres_url, kafka_bootstrap)
    alice, bob = await issue_key(settings, "alice"), await issue_key(settings, "bob")
    owner = alice.split("_")[1]
    async with running_service(settings, with_worker=False) as svc:
        as_alice, as_bob = bearer(alice), bearer(bob)
        request_id = (await svc.client.post("/api/v1/requests", json=SUBMIT, headers=as_alice)).json()["id"]
        path = f"/api/v1/requests/{request_id}"

        def poll(
            headers: dict[str, str] = as_alice, wait: float = 3
        ) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: svc.client.get(f"{path}?wait={wait}", headers=headers)

        holding = await held_by(svc, "long_poll", owner, [poll(), poll()])
        refused = await svc.client.get(f"{path}?wait=3", headers=as_alice)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_connections"
        assert int(refused.headers["retry-after"]) >= 1
        # A plain read is no held connection; Prefer: wait at the cap is answered at once (202).
        assert (await svc.client.get(path, headers=as_alice)).status_code == 200
        submitted = await svc.client.post(
            "/api/v1/requests", json=SUBMIT, headers={**as_alice, "Prefer": "wait=3"}
        )
        assert submitted.status_code == 202 and "preference-applied" not in submitted.headers
        # Another owner has caps of its own (bob cannot read alice's request: 404 after his wait).
        assert (await svc.client.get(f"{path}?wait=0.2", headers=as_bob)).status_code == 404
        assert [task.status_code for task in await asyncio.gather(*holding)] == [200, 200]
        assert svc.app.state.runtime.connections.open_count("long_poll", owner) == 0
        assert (await svc.client.get(f"{path}?wait=0.1", headers=as_alice)).status_code == 200


async def test_sse_streams_past_the_owners_cap_get_429(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = _settings(postgres_url, kafka_bootstrap, sse_max_seconds=2, sse_keepalive_seconds=0.5)
    alice = await issue_key(settings, "alice")
    owner = alice.split("_")[1]
    async with running_service(settings, with_worker=False) as svc:
        as_alice = bearer(alice)
        request_id = (await svc.client.post("/api/v1/requests", json=SUBMIT, headers=as_alice)).json()["id"]
        events = f"/api/v1/requests/{request_id}/events"
        holding = await held_by(
            svc, "sse", owner, [lambda: svc.client.get(events, headers=as_alice) for _ in range(2)]
        )
        refused = await svc.client.get(events, headers=as_alice)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # A streamed chat completion is an SSE stream too (refused before anything is submitted).
        chat = await svc.client.post(
            "/v1/chat/completions",
            json={"model": "dryrun", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            headers=as_alice,
        )
        assert chat.status_code == 429 and chat.json()["error"]["type"] == "rate_limit_error"
        finished = await asyncio.gather(*holding)  # the streams end at SSE_MAX_SECONDS
        assert all(": keep-alive" in stream.text or "event: status" in stream.text for stream in finished)
        assert svc.app.state.runtime.connections.open_count("sse", owner) == 0
