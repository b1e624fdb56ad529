"""Status events on the responses topic, and the waiters they wake: long-poll, `Prefer: wait`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from service.app import create_app
from service.config import Settings
from service.db.models import AnalysisRequest, RequestStatus, utcnow
from service.schemas.events import StatusEvent
from tests.support import SEED_EXAMPLE, make_settings, read_topic, running_service

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}


async def _events(settings: Settings, expected: int) -> list[StatusEvent]:
    records = await read_topic(settings.kafka_bootstrap_servers, settings.kafka_topic_responses, expected)
    for record in records:
        assert record.key == str(StatusEvent.from_bytes(record.value).request_id).encode()
    return [StatusEvent.from_bytes(record.value) for record in records]


class CountingStore:
    """The app's request store, counting status reads: waiting must not poll the database."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.status_reads = 0

    async def get_status(self, request_id: uuid.UUID) -> Any:
        self.status_reads += 1
        return await self.inner.get_status(request_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def second_api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, CountingStore]]:
    """Another API process's app on the same database and broker (its own status hub)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        store = CountingStore(app.state.runtime.store)
        app.state.runtime = dataclasses.replace(app.state.runtime, _store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://second") as client:
            yield client, store


async def test_a_finished_request_publishes_processing_then_completed(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        final = await svc.wait_final(request_id)
        events = await _events(settings, 2)
    assert [event.status for event in events] == ["processing", "completed"]
    completed = events[1]
    assert completed.schema_version == 1 and str(completed.request_id) == request_id
    assert completed.kind == "spreadsheet" and completed.error_code is None and completed.batch_id is None
    assert completed.finished_at is not None and completed.started_at is not None
    assert completed.finished_at.isoformat().startswith(final["finished_at"][:19])
    assert completed.published_at >= completed.finished_at


async def test_cancel_and_expiry_publish_their_events(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, request_ttl_seconds=60)
    async with running_service(settings, with_worker=False) as svc:
        cancelled_id = (await svc.submit(SPREADSHEET)).json()["id"]
        expired_id = (await svc.submit(SPREADSHEET)).json()["id"]
        assert (await svc.client.post(f"/api/v1/requests/{cancelled_id}/cancel")).status_code == 200
        await svc.backdate(expired_id, created_at=utcnow() - timedelta(minutes=2))
        await svc.sweep_once()
        events = {str(event.request_id): event for event in await _events(settings, 2)}
    assert events[cancelled_id].status == "cancelled" and events[cancelled_id].finished_at
    assert events[expired_id].status == "expired" and events[expired_id].error_code == "expired"


async def test_long_poll_on_another_api_process_wakes_on_the_event(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    # The model takes a while, so the waiter on the second process really has to wait.
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_latency_ms=1500, long_poll_max_seconds=60)
    async with running_service(settings) as svc, second_api(settings) as (other, store):
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        started = time.monotonic()
        response = await other.get(f"/api/v1/requests/{request_id}", params={"wait": 60})
        waited = time.monotonic() - started
        assert response.status_code == 200 and response.json()["status"] == "completed"
        # Woken by the event, long before the deadline; one read before sleeping, one after.
        assert waited < 50
        assert store.status_reads == 2


async def test_a_lost_event_costs_the_waiter_its_wait_not_the_answer(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        waiter = asyncio.create_task(svc.client.get(f"/api/v1/requests/{request_id}", params={"wait": 2}))
        await asyncio.sleep(0.5)
        async with svc.sessions() as session:  # finished behind the hub's back: no event at all
            await session.execute(
                update(AnalysisRequest)
                .where(AnalysisRequest.id == uuid.UUID(request_id))
                .values(status=RequestStatus.COMPLETED, finished_at=utcnow())
            )
            await session.commit()
        assert (await waiter).json()["status"] == "completed"


async def test_prefer_wait_answers_with_the_finished_request(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/api/v1/requests", json=SPREADSHEET, headers={"Prefer": "respond-async, wait=30"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed" and body["finished_at"]
        assert response.headers["preference-applied"] == "wait=30"
        assert response.headers["location"] == f"/api/v1/requests/{body['id']}"


async def test_prefer_wait_past_its_limit_answers_202(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        response = await svc.client.post("/api/v1/requests", json=SPREADSHEET, headers={"Prefer": "wait=1"})
        assert response.status_code == 202 and response.json()["status"] == "queued"
        # Nonsense preferences are ignored (RFC 7240), not refused.
        response = await svc.client.post(
            "/api/v1/requests", json=SPREADSHEET, headers={"Prefer": "wait=soon"}
        )
        assert response.status_code == 202
