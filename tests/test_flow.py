"""Both request kinds end to end through the real broker and worker, on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid

from tests.support import PROCESS_EXAMPLE, SEED_EXAMPLE, make_settings, running_service


async def test_spreadsheet_request_end_to_end(database_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert body["links"]["result"] == f"/api/v1/requests/{body['id']}/result"
        assert response.headers["location"] == body["links"]["status"]

        final = await svc.wait_final(body["id"])
        assert final["status"] == "completed", final
        assert final["attempts"] == 1
        assert final["category"] == "spreadsheet-analysis"
        assert final["started_at"] and final["finished_at"]

        result = (await svc.client.get(f"/api/v1/requests/{body['id']}/result")).json()
        values = result["result"]["values"]
        # The query is Russian, so is the answer (the dryrun backend follows the query's language).
        assert values[0] == ["Столбец", "Количество", "Сумма", "Среднее", "Мин", "Макс"]
        assert ["Январь", 2, 180, 90, 80, 100] in values
        assert result["usage"]["total_tokens"] > 0
        assert result["usage"]["llm_calls"] == 1
        assert len(svc.backend.calls) == 1


async def test_process_analysis_end_to_end(database_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.submit(PROCESS_EXAMPLE)
        assert response.status_code == 202, response.text
        final = await svc.wait_final(response.json()["id"])
        assert final["status"] == "completed", final
        assert final["category"] == "process-analysis"
        result = (await svc.client.get(f"/api/v1/requests/{final['id']}/result")).json()["result"]
        assert 1 <= result["score"] <= 10
        assert result["solution"]["tools"]
        assert result["savings"]["hours_per_month"] > 0
        assert len(result["implementation"]) >= 1


async def test_seed_contract_curl_example(postgres_url: str, kafka_bootstrap: str) -> None:
    """The seed document's curl example, as written, reaches completed and returns a 2-D array."""
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.client.post("/api/ai/process", json=SEED_EXAMPLE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["status"] == "queued"
        request_id = body["request_id"]
        await svc.wait_final(request_id)

        status = (await svc.client.get(f"/api/ai/status/{request_id}")).json()
        assert status == {**status, "success": True, "request_id": request_id, "status": "completed"}

        result = (await svc.client.get(f"/api/ai/result/{request_id}")).json()
        assert result["success"] is True
        assert isinstance(result["result"], list) and all(isinstance(row, list) for row in result["result"])
        assert len({len(row) for row in result["result"]}) == 1
        assert result["tokens_used"] > 0
        assert result["processing_time"] >= 0

        metrics = (await svc.client.get("/api/metrics")).json()
        assert metrics["success"] is True
        assert metrics["requests"]["by_status"]["completed"] >= 1
        assert metrics["tokens"]["total"] >= result["tokens_used"]
        assert metrics["processing_seconds"]["count"] >= 1

        health = (await svc.client.get("/api/health")).json()
        assert health["components"]["database"]["ok"] and health["components"]["broker"]["ok"]


async def test_unknown_id_is_404_everywhere(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        missing = uuid.uuid4()
        for path in (
            f"/api/v1/requests/{missing}",
            f"/api/v1/requests/{missing}/result",
            f"/api/ai/status/{missing}",
            f"/api/ai/result/{missing}",
        ):
            response = await svc.client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
        assert (await svc.client.get("/api/v1/requests/not-a-uuid")).status_code == 422


async def test_result_is_409_until_finished_and_cancel(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        request_id = (await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"]
        response = await svc.client.get(f"/api/v1/requests/{request_id}/result")
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "result_not_ready" and error["details"]["status"] == "queued"

        cancelled = await svc.client.post(f"/api/v1/requests/{request_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = await svc.client.post(f"/api/v1/requests/{request_id}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"
        assert (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()["error"][
            "code"
        ] == "no_result"


async def test_long_poll_returns_when_final(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_latency_ms=300)
    async with running_service(settings) as svc:
        request_id = (await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"]
        body = (await svc.client.get(f"/api/v1/requests/{request_id}", params={"wait": 20})).json()
        assert body["status"] == "completed"


async def test_idempotency_key_returns_the_first_request(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        body = {"kind": "spreadsheet", **SEED_EXAMPLE, "idempotency_key": "order-42"}
        first = await svc.submit(body)
        second = await svc.submit(body)
        assert first.status_code == 202 and second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
