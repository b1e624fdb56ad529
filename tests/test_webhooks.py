"""Webhooks end to end: a local receiver verifies signatures; failures, retries, 410, a dispatcher
restart, replays and the SSRF guard."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from service.client import WebhookVerificationError, verify_webhook
from service.config import Settings
from service.db.webhook_models import WebhookDelivery, WebhookEndpoint
from service.retry_after import parse_retry_after
from service.schemas.events import StatusEvent
from service.webhooks.dispatcher import WebhookDispatcher
from service.webhooks.signing import new_secret, signed_headers
from service.webhooks.ssrf import UnsafeTarget, resolve_safe
from tests.peers.webhook_receiver import webhook_receiver
from tests.support import SEED_EXAMPLE, RunningService, bearer, issue_key, make_settings, running_service

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}
SECRET = new_secret()


def webhook_settings(postgres_url: str, kafka_bootstrap: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secrets": SECRET,
        "webhook_allow_private_targets": True,  # the receiver listens on loopback
        "webhook_consumer_group": f"test-webhooks-{uuid.uuid4().hex[:8]}",
        "webhook_retry_base_seconds": 0.05,
        "webhook_poll_seconds": 0.05,
        **overrides,
    }
    return make_settings(postgres_url, kafka_bootstrap, **values)


@asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[WebhookDispatcher]:
    running = WebhookDispatcher(settings)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        await task


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def submit_with_webhook(svc: RunningService, url: str, **webhook: Any) -> str:
    response = await svc.submit({**SPREADSHEET, "webhook": {"url": url, **webhook}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_signed_delivery_survives_failures_with_one_webhook_id(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    with webhook_receiver(SECRET) as receiver:
        receiver.faults.server_errors = 1
        receiver.faults.rate_limited = 1
        receiver.faults.retry_after = "0"
        async with running_service(settings) as svc, dispatcher(settings):
            request_id = await submit_with_webhook(svc, receiver.url)
            await until(lambda: bool(receiver.answered(204)))

            async def this_receivers_deliveries() -> list[WebhookDelivery]:
                async with svc.sessions() as session:
                    query = (
                        select(WebhookDelivery)
                        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                        .where(WebhookEndpoint.url == receiver.url)
                    )
                    return list((await session.execute(query)).scalars())

            for _ in range(200):  # the outcome is committed just after the 204 arrived
                delivery = await this_receivers_deliveries()
                if delivery and all(row.state != "pending" for row in delivery):
                    break
                await asyncio.sleep(0.05)
        statuses = [item.status for item in receiver.received]
        assert statuses == [429, 500, 204]
        assert len(set(receiver.ids())) == 1 and receiver.ids()[0].startswith("msg_")
        payload = receiver.received[-1].payload
        assert payload is not None, "the signature must verify"
        assert payload["type"] == "request.completed"
        assert payload["data"]["id"] == request_id and payload["data"]["status"] == "completed"
        assert payload["data"]["links"]["result"] == f"/api/v1/requests/{request_id}/result"
        mine = [row for row in delivery if str(row.request_id) == request_id]
        assert [(row.state, row.attempts, row.last_status_code) for row in mine] == [("delivered", 3, 204)]


async def test_gone_disables_the_endpoint_and_replay_resends(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    with webhook_receiver("") as receiver:
        async with running_service(settings) as svc, dispatcher(settings):
            created = await svc.client.post(
                "/api/v1/webhooks/endpoints", json={"url": receiver.url, "events": ["request.completed"]}
            )
            assert created.status_code == 201, created.text
            endpoint = created.json()
            assert endpoint["secret"].startswith("whsec_")
            receiver.secret = endpoint["secret"]
            # An owner endpoint sees every request of its owner, without a per-request webhook.
            await svc.wait_final((await svc.submit(SPREADSHEET)).json()["id"])
            await until(lambda: bool(receiver.answered(204)))
            for _ in range(200):  # the outcome is committed just after the 204 arrived
                log = (await svc.client.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries")).json()
                delivered = [entry for entry in log if entry["state"] == "delivered"]
                if delivered:
                    break
                await asyncio.sleep(0.05)
            assert delivered and delivered[0]["event_type"] == "request.completed"
            assert receiver.received[0].payload is not None

            # Replay: the same message again, same webhook-id.
            replayed = await svc.client.post(f"/api/v1/webhooks/deliveries/{delivered[0]['id']}/replay")
            assert replayed.status_code == 202
            await until(lambda: len(receiver.answered(204)) >= 2)
            assert receiver.ids()[-1] == delivered[0]["id"]

            # 410: the delivery ends and the endpoint is disabled; later requests send nothing.
            receiver.gone = True
            await svc.wait_final((await svc.submit(SPREADSHEET)).json()["id"])
            await until(lambda: bool(receiver.answered(410)))
            for _ in range(200):  # the disable is committed just after the 410 arrived
                endpoints = (await svc.client.get("/api/v1/webhooks/endpoints")).json()
                mine = next(item for item in endpoints if item["id"] == endpoint["id"])
                if not mine["enabled"]:
                    break
                await asyncio.sleep(0.05)
            assert mine["enabled"] is False and "410" in mine["disabled_reason"]
            calls = len(receiver.received)
            await svc.wait_final((await svc.submit(SPREADSHEET)).json()["id"])
            await asyncio.sleep(1.0)
            assert len(receiver.received) == calls


async def test_dispatcher_restart_loses_nothing_and_duplicates_nothing(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    with webhook_receiver(SECRET) as receiver:
        async with running_service(settings) as svc:
            async with dispatcher(settings):
                first = await submit_with_webhook(svc, receiver.url)
                await until(lambda: len(receiver.answered(204)) == 1)
            # Dispatcher down: these finish meanwhile, their events wait on the topic.
            later = [await submit_with_webhook(svc, receiver.url) for _ in range(3)]
            for request_id in later:
                await svc.wait_final(request_id)
            async with dispatcher(settings) as again:
                await until(lambda: len(receiver.answered(204)) == 4)
                # An event consumed twice (as after a crash before the offset commit) adds nothing.
                async with svc.sessions() as session:
                    before = await session.scalar(select(func.count()).select_from(WebhookDelivery))
                status = (await svc.client.get(f"/api/v1/requests/{first}")).json()
                replayed_event = StatusEvent(
                    request_id=uuid.UUID(first),
                    kind="spreadsheet",
                    status="completed",
                    created_at=status["created_at"],
                    finished_at=status["finished_at"],
                    published_at=status["finished_at"],
                )
                await again.enqueue([replayed_event])
                async with svc.sessions() as session:
                    assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == before
                await asyncio.sleep(0.5)
        ids = receiver.ids()
        assert len(ids) == 4 and len(set(ids)) == 4
        got = {item.payload["data"]["id"] for item in receiver.received if item.payload}
        assert got == {first, *later}


async def test_ssrf_guard_refuses_internal_targets(postgres_url: str, kafka_bootstrap: str) -> None:
    for url in (
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.org/hook",
        "http://user:pw@example.org/hook",
    ):
        with pytest.raises(UnsafeTarget):
            await resolve_safe(url, allow_private=False)
    settings = webhook_settings(postgres_url, kafka_bootstrap, webhook_allow_private_targets=False)
    async with running_service(settings, with_worker=False) as svc:
        response = await svc.submit({**SPREADSHEET, "webhook": {"url": "http://127.0.0.1:9/hook"}})
        assert response.status_code == 422 and "non-public" in response.json()["error"]["message"]
        response = await svc.client.post("/api/v1/webhooks/endpoints", json={"url": "http://10.0.0.1/x"})
        assert response.status_code == 422


async def test_the_target_is_checked_again_at_delivery(postgres_url: str, kafka_bootstrap: str) -> None:
    """Registered while private targets were allowed; delivered by a dispatcher that refuses them
    (as when a name starts resolving to an internal address): nothing is sent."""
    allowed = webhook_settings(postgres_url, kafka_bootstrap)
    strict = allowed.model_copy(update={"webhook_allow_private_targets": False})
    with webhook_receiver(SECRET) as receiver:
        async with running_service(allowed) as svc, dispatcher(strict):
            request_id = await submit_with_webhook(svc, receiver.url)
            await svc.wait_final(request_id)

            async def state() -> tuple[str, str | None] | None:
                async with svc.sessions() as session:
                    row = (
                        await session.execute(
                            select(WebhookDelivery)
                            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                            # this receiver's delivery: other tests' default endpoints of the same
                            # owner (shared database) may receive the request too
                            .where(
                                WebhookDelivery.request_id == uuid.UUID(request_id),
                                WebhookEndpoint.url == receiver.url,
                            )
                        )
                    ).scalar_one_or_none()
                return (row.state, row.last_error) if row else None

            for _ in range(200):
                current = await state()
                if current and current[0] != "pending":
                    break
                await asyncio.sleep(0.05)
        assert current is not None and current[0] == "failed" and "non-public" in (current[1] or "")
        assert receiver.received == []


def test_signatures_of_a_rotation_verify_with_either_secret() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"type":"request.completed"}'
    headers = signed_headers([new, old], "msg_1", int(time.time()), body)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        assert verify_webhook(secret, headers, body)["type"] == "request.completed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new_secret(), headers, body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, headers, body + b" ")
    stale = signed_headers([new], "msg_1", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, stale, body)


def test_retry_after_accepts_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None


async def test_an_owner_endpoint_hears_only_its_owner(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = webhook_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    alice, bob = await issue_key(settings, "alice"), await issue_key(settings, "bob")
    with webhook_receiver("") as receiver:
        async with running_service(settings, api_key=alice) as svc, dispatcher(settings):
            created = await svc.client.post("/api/v1/webhooks/endpoints", json={"url": receiver.url})
            endpoint = created.json()
            receiver.secret = endpoint["secret"]
            as_bob = bearer(bob)
            # Bob sees neither Alice's endpoints nor their log, and cannot replay her deliveries.
            assert (await svc.client.get("/api/v1/webhooks/endpoints", headers=as_bob)).json() == []
            log_path = f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries"
            assert (await svc.client.get(log_path, headers=as_bob)).status_code == 404
            bobs = await svc.client.post("/api/v1/requests", json=SPREADSHEET, headers=as_bob)
            alices = await svc.submit(SPREADSHEET)
            await svc.client.get(f"/api/v1/requests/{bobs.json()['id']}?wait=30", headers=as_bob)
            await svc.wait_final(alices.json()["id"])
            await until(lambda: bool(receiver.answered(204)))
            log = (await svc.client.get(log_path)).json()
            assert (
                await svc.client.post(f"/api/v1/webhooks/deliveries/{log[0]['id']}/replay", headers=as_bob)
            ).status_code == 404
            await asyncio.sleep(0.5)
        got = [item.payload["data"]["id"] for item in receiver.received if item.payload]
        assert got == [alices.json()["id"]]


async def test_a_finished_batch_sends_batch_completed(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    chat = [
        {"custom_id": f"c{n}", "kind": "chat", "messages": [{"role": "user", "content": f"q{n}"}]}
        for n in range(3)
    ]
    with webhook_receiver("") as receiver:
        async with running_service(settings) as svc, dispatcher(settings):
            created = await svc.client.post(
                "/api/v1/webhooks/endpoints", json={"url": receiver.url, "events": ["batch.completed"]}
            )
            receiver.secret = created.json()["secret"]
            batch = (await svc.client.post("/api/v1/batches", json=chat)).json()
            await until(lambda: bool(receiver.answered(204)), timeout=60)
            await asyncio.sleep(0.5)
    payloads = [item.payload for item in receiver.received]
    assert len(payloads) == 1 and payloads[0] is not None  # only the batch's own event was asked for
    assert payloads[0]["type"] == "batch.completed"
    assert payloads[0]["data"]["id"] == batch["id"] and payloads[0]["data"]["status"] == "completed"
    assert payloads[0]["data"]["links"]["status"] == f"/api/v1/batches/{batch['id']}"


async def test_a_batch_that_fails_at_creation_sends_batch_failed(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    """Invalid lines fail an OpenAI batch at once, before the feeder ever sees it: the event still goes."""
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    bad_line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    with webhook_receiver("") as receiver:
        async with running_service(settings, with_worker=False) as svc, dispatcher(settings):
            created = await svc.client.post(
                "/api/v1/webhooks/endpoints", json={"url": receiver.url, "events": ["batch.failed"]}
            )
            receiver.secret = created.json()["secret"]
            uploaded = await svc.client.post(
                "/v1/files", files={"file": ("in.jsonl", bad_line)}, data={"purpose": "batch"}
            )
            batch = await svc.client.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded.json()["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
            assert batch.json()["status"] == "failed", batch.text
            await until(lambda: bool(receiver.answered(204)), timeout=60)
    (payload,) = [item.payload for item in receiver.received]
    assert payload is not None and payload["type"] == "batch.failed"
    # The webhook names the batch as the native surface does; OpenAI's id is its hex with a prefix.
    assert f"batch_{uuid.UUID(payload['data']['id']).hex}" == batch.json()["id"]
    assert payload["data"]["status"] == "failed"


async def test_a_replayed_submit_leaves_no_orphan_endpoint(postgres_url: str, kafka_bootstrap: str) -> None:
    """The request row and its webhook endpoint are written together: a replay with the same
    idempotency key answers the first request and stores no second endpoint (it used to commit the
    endpoint first, then find the key taken)."""
    settings = webhook_settings(postgres_url, kafka_bootstrap)
    key = f"replay-{uuid.uuid4().hex}"
    url = f"http://127.0.0.1:9/hook/{key}"  # its own URL: other tests register endpoints too
    async with running_service(settings, with_worker=False) as svc:
        body = {**SPREADSHEET, "idempotency_key": key, "webhook": {"url": url}}
        first = await svc.submit(body)
        again = await svc.submit(body)
        assert first.status_code == 202 and again.status_code == 200, (first.text, again.text)
        assert again.json()["id"] == first.json()["id"]
        async with svc.sessions() as session:
            endpoints = (
                await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.url == url))
            ).scalars()
            assert [str(row.request_id) for row in endpoints] == [first.json()["id"]]
