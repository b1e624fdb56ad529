"""Native batches (/api/v1/batches): spreadsheet, process-analysis and chat lines through the
batch lane, results in line order, cancel and expiry counts, and every kind of bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import update

from service.db.batch_models import Batch
from service.db.models import utcnow
from service.schemas.events import StatusEvent
from tests.conftest import fresh_postgres_database
from tests.support import (
    PROCESS_EXAMPLE,
    SEED_EXAMPLE,
    RunningService,
    make_settings,
    read_topic,
    running_service,
)


@pytest.fixture(scope="module", name="postgres_url")
async def batches_database() -> AsyncIterator[str]:
    """This module's batches live in a database of their own: a worker's batch feeder releases the
    lines of every open batch it finds, which would reach the backends of other tests."""
    async with fresh_postgres_database() as url:
        yield url


def lines(count: int) -> list[dict[str, Any]]:
    """Mixed kinds, each line distinguishable by its custom_id and its input."""
    items: list[dict[str, Any]] = []
    for number in range(count):
        if number % 3 == 0:
            items.append(
                {
                    "custom_id": f"c{number}",
                    "kind": "spreadsheet",
                    **SEED_EXAMPLE,
                    "input_data": [["Товар", "Итого"], ["A", number]],
                }
            )
        elif number % 3 == 1:
            items.append({"custom_id": f"c{number}", **PROCESS_EXAMPLE, "title": f"Process {number}"})
        else:
            items.append(
                {
                    "custom_id": f"c{number}",
                    "kind": "chat",
                    "messages": [{"role": "user", "content": f"question {number}"}],
                }
            )
    return items


async def wait_batch(
    svc: RunningService, batch_id: str, statuses: tuple[str, ...], timeout: float = 60
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await svc.client.get(f"/api/v1/batches/{batch_id}")).json()
        if body["status"] in statuses:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"batch still {body['status']} after {timeout}s: {body['counts']}")
        await asyncio.sleep(0.1)


async def wait_counts(svc: RunningService, batch_id: str, ready: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready((await svc.client.get(f"/api/v1/batches/{batch_id}")).json()["counts"]):
        assert loop.time() < deadline, "counts never got there"
        await asyncio.sleep(0.05)


async def results(svc: RunningService, batch_id: str) -> list[dict[str, Any]]:
    response = await svc.client.get(f"/api/v1/batches/{batch_id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_native_batch_of_mixed_lines_completes_in_line_order(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.client.post("/api/v1/batches", json=lines(12))
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["status"] == "in_progress" and created["counts"]["total"] == 12
        final = await wait_batch(svc, created["id"], ("completed",))
        assert final["counts"]["completed"] == 12 and final["progress"] == 1.0
        assert final["completed_at"]
        out = await results(svc, created["id"])
        assert [line["custom_id"] for line in out] == [f"c{n}" for n in range(12)]
        assert [line["line"] for line in out] == list(range(1, 13))
        assert all(line["status"] == "completed" for line in out)
        assert out[3]["result"]["values"][1][0] == "Итого"  # spreadsheet: statistics of its own column
        assert 1 <= out[1]["result"]["score"] <= 10  # process analysis
        assert "question 2" in out[2]["result"]["message"]["content"]  # chat
        # Every line went through the batch lane and was called exactly once.
        assert len(svc.backend.calls) == 12 + 0  # categories given or implied: no classification calls


async def test_jsonl_body_is_accepted_too(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        body = b"\n".join(orjson.dumps(item) for item in lines(4)) + b"\n"
        response = await svc.client.post(
            "/api/v1/batches", content=body, headers={"content-type": "application/jsonl"}
        )
        assert response.status_code == 201, response.text
        final = await wait_batch(svc, response.json()["id"], ("completed",))
        assert final["counts"]["completed"] == 4


async def test_cancel_stops_unstarted_lines_and_keeps_partial_results(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    # A slow backend and a narrow lane: most lines are still held when the cancel arrives.
    settings = make_settings(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=300, batch_owner_window=2, worker_batch_concurrency=2
    )
    async with running_service(settings) as svc:
        batch_id = (await svc.client.post("/api/v1/batches", json=lines(30))).json()["id"]
        await wait_counts(svc, batch_id, lambda counts: counts["completed"] >= 2)
        cancelled = await svc.client.post(f"/api/v1/batches/{batch_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"
        final = await wait_batch(svc, batch_id, ("cancelled",))
        counts = final["counts"]
        assert counts["completed"] >= 2 and counts["cancelled"] >= 20
        assert counts["completed"] + counts["cancelled"] + counts["failed"] == 30
        assert counts["queued"] == counts["processing"] == 0
        out = await results(svc, batch_id)
        assert len(out) == 30
        assert sum(1 for line in out if line["status"] == "completed") == counts["completed"]
        assert all(
            line["error"]["code"] == "batch_cancelled" for line in out if line["status"] == "cancelled"
        )
        # A cancelled line never reached the model.
        assert len(svc.backend.calls) == counts["completed"] + counts["failed"]
        again = await svc.client.post(f"/api/v1/batches/{batch_id}/cancel")
        assert again.status_code == 409


async def test_expiry_ends_unfinished_lines_expired_with_partial_results(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        batch_id = (await svc.client.post("/api/v1/batches", json=lines(6))).json()["id"]
        # Its completion window is over (moved into the past, rather than waiting an hour).
        async with svc.sessions() as session:
            await session.execute(
                update(Batch)
                .where(Batch.id == uuid.UUID(batch_id))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        svc.start_worker()
        final = await wait_batch(svc, batch_id, ("expired",))
        assert final["counts"]["expired"] == 6 and final["expired_at"]
        out = await results(svc, batch_id)
        assert {line["error"]["code"] for line in out} == {"batch_expired"}
        assert svc.backend.calls == []
        # Lines ended by the batch (not by a worker) are announced like any final status.
        # (Plus the batch's own event when it finishes: six line events and one batch event.)
        records = await read_topic(kafka_bootstrap, settings.kafka_topic_responses, expected=7)
        line_ids = {line["request_id"] for line in out}
        events = [StatusEvent.from_bytes(record.value) for record in records]
        line_events = [event for event in events if str(event.request_id) in line_ids]
        assert sorted(str(event.request_id) for event in line_events) == sorted(line_ids)
        assert {(event.status, str(event.batch_id)) for event in line_events} == {("expired", batch_id)}


async def test_failing_lines_fail_alone_and_the_batch_completes(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_failure_rate=0.3, llm_max_attempts=1)
    async with running_service(settings) as svc:
        batch_id = (await svc.client.post("/api/v1/batches", json=lines(30))).json()["id"]
        final = await wait_batch(svc, batch_id, ("completed",))
        counts = final["counts"]
        assert counts["failed"] > 0 and counts["completed"] > 0
        assert counts["failed"] + counts["completed"] == 30
        out = await results(svc, batch_id)
        assert sum(1 for line in out if line["status"] == "failed") == counts["failed"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b"not json", "application/json", 422, "not valid JSON"),
        (b'{"custom_id": "a"}', "application/json", 422, "JSON list"),
        (b"[]", "application/json", 422, "no request lines"),
        (b"[1]", "application/json", 422, "not a JSON object"),
        (
            orjson.dumps([{"kind": "chat", "messages": [{"role": "user", "content": "x"}]}]),
            "application/json",
            422,
            "custom_id",
        ),
        (
            orjson.dumps(
                [{"custom_id": "a", "kind": "chat", "messages": [{"role": "user", "content": "x"}]}] * 2
            ),
            "application/json",
            422,
            "duplicate_custom_id",
        ),
        (
            orjson.dumps([{"custom_id": "a", "kind": "spreadsheet", "query_text": " "}]),
            "application/json",
            422,
            "query_text",
        ),
        (orjson.dumps([{"custom_id": "a", "kind": "poem"}]), "application/json", 422, "line 1"),
        (
            b'{"custom_id": "a", "kind": "chat", "messages": [{"role": "user", "content": "x"}]}\n{oops\n',
            "application/jsonl",
            422,
            "invalid_json_line",
        ),
        (b"<xml/>", "application/xml", 422, "application/jsonl"),
    ],
)
async def test_bad_batches_are_refused_and_nothing_is_created(
    body: bytes, content_type: str, status: int, needle: str, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        before = (await svc.client.get("/api/v1/batches")).json()["data"]
        response = await svc.client.post(
            "/api/v1/batches", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == status, response.text
        assert needle in response.text
        assert response.json()["error"]["code"] in ("validation_error", "invalid_batch")
        assert (await svc.client.get("/api/v1/batches")).json()["data"] == before


async def test_too_many_lines_and_bytes_are_refused(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, batch_max_lines=5, batch_max_bytes=4000)
    async with running_service(settings, with_worker=False) as svc:
        too_many = await svc.client.post("/api/v1/batches", json=lines(6))
        assert too_many.status_code == 422 and "too_many_lines" in too_many.text
        too_big = await svc.client.post(
            "/api/v1/batches", content=b"\n" * 5000, headers={"content-type": "application/jsonl"}
        )
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"


async def test_unknown_batch_is_404(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        for path in (
            f"/api/v1/batches/{uuid.uuid4()}",
            "/api/v1/batches/nope",
            f"/api/v1/batches/{uuid.uuid4()}/results",
        ):
            response = await svc.client.get(path)
            assert response.status_code == 404, response.text


async def test_worker_stopped_mid_batch_loses_nothing_and_calls_no_line_twice(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        dryrun_latency_ms=100,
        batch_owner_window=10,
        worker_batch_concurrency=4,
    )
    items = [
        {"custom_id": f"k{n}", "kind": "chat", "messages": [{"role": "user", "content": f"line {n}"}]}
        for n in range(60)
    ]
    async with running_service(settings) as svc:
        batch_id = (await svc.client.post("/api/v1/batches", json=items)).json()["id"]
        await wait_counts(svc, batch_id, lambda counts: counts["completed"] >= 10)
        await svc.stop_worker()  # mid-batch: lines in the lane, lines held, lines running
        stopped_at = (await svc.client.get(f"/api/v1/batches/{batch_id}")).json()["counts"]
        assert stopped_at["completed"] < 60
        svc.start_worker()
        final = await wait_batch(svc, batch_id, ("completed",))
        assert final["counts"]["completed"] == 60
        asked = [call.messages[-1].content for call in svc.backend.calls]
        assert sorted(asked) == sorted(f"line {n}" for n in range(60))  # each line once, none twice
