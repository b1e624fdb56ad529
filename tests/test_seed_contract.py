"""The seed's clients unchanged (issue 8): field names, row objects, result shapes, idempotency."""

from __future__ import annotations

import uuid
from typing import Any

from service.db.requests_repo import get_request
from service.kinds.base import seed_values
from tests.support import SEED_EXAMPLE, make_settings, running_service

# What the seed's plugins also sent: one object per row, keys as the header.
ROW_OBJECTS = [
    {"Товар": "Товар A", "Январь": 100, "Февраль": 120},
    {"Товар": "Товар B", "Январь": 80, "Март": 95},
]
AS_ARRAY = [
    ["Товар", "Январь", "Февраль", "Март"],
    ["Товар A", 100, 120, None],
    ["Товар B", 80, None, 95],
]


async def test_classify_accepts_the_seeds_prompt_text(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        by_seed_name = await svc.client.post(
            "/api/prompts/classify", json={"prompt_text": "Построй круговую диаграмму продаж по месяцам"}
        )
        by_our_name = await svc.client.post(
            "/api/prompts/classify", json={"query_text": "Построй круговую диаграмму продаж по месяцам"}
        )
        empty = await svc.client.post("/api/prompts/classify", json={"query_text": ""})
    assert by_seed_name.status_code == 200, by_seed_name.text
    seed_body, our_body = by_seed_name.json(), by_our_name.json()
    assert seed_body["success"] is True
    assert seed_body["category"] == our_body["category"] == "data-chart"
    # Before the fix the text was dropped and classified like an empty query.
    assert seed_body["category"] != empty.json()["category"]


async def test_row_objects_become_header_and_rows_on_both_paths(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        seed = await svc.client.post(
            "/api/ai/process",
            json={"query_text": "Найди сумму по товарам", "input_range": "A1:D3", "input_data": ROW_OBJECTS},
        )
        v1 = await svc.submit({"kind": "spreadsheet", "query_text": "Найди сумму", "input_data": ROW_OBJECTS})
        mixed = await svc.submit({"kind": "spreadsheet", "query_text": "x", "input_data": [{"a": 1}, [1]]})
        assert seed.status_code == 200, seed.text
        assert v1.status_code == 202, v1.text
        assert mixed.status_code == 422  # objects and arrays mixed: not a table
        for request_id in (seed.json()["request_id"], v1.json()["id"]):
            await svc.wait_final(request_id)
            async with svc.sessions() as session:
                row = await get_request(session, uuid.UUID(request_id))
            assert row is not None and row.input_data == AS_ARRAY


def test_seed_values_gives_a_table_where_the_answer_has_one() -> None:
    assert seed_values({"values": [["a", 1]], "text": "t"}) == [["a", 1]]
    inline_chart = {
        "chart_type": "pie",
        "series": [{"name": "Продажи", "values": [1.0, 2.0, 3.0]}, {"name": "", "values": [4.0]}],
    }
    assert seed_values(inline_chart) == [["Продажи", "Series 2"], [1.0, 4.0], [2.0, None], [3.0, None]]
    by_range = {"chart_type": "line", "series": [{"name": "S", "values_range": "B2:B9"}]}
    assert seed_values(by_range) == []
    assert seed_values({"source_columns": ["B"], "bins": 5}) == []


async def test_seed_result_carries_chart_and_formatting_answers(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        ids = {}
        for category, query in (
            ("data-chart", "Построй диаграмму продаж"),
            ("data-histogram", "Гистограмма распределения"),
            ("spreadsheet-formatting", "Выдели заголовок жирным"),
        ):
            response = await svc.client.post(
                "/api/ai/process", json={**SEED_EXAMPLE, "query_text": query, "category": category}
            )
            ids[category] = response.json()["request_id"]
        for request_id in ids.values():
            await svc.wait_final(request_id)
        results = {c: (await svc.client.get(f"/api/ai/result/{i}")).json() for c, i in ids.items()}
        v1 = {c: (await svc.client.get(f"/api/v1/requests/{i}/result")).json() for c, i in ids.items()}

    for category, body in results.items():
        assert body["success"] is True and body["status"] == "completed", body
        assert body["category"] == category
        # The structured answer is the v1 result, whole.
        assert body["answer"] == v1[category]["result"]
        assert body["result"] == seed_values(body["answer"])
    assert {c: body["answer_type"] for c, body in results.items()} == {
        "data-chart": "chart",
        "data-histogram": "histogram",
        "spreadsheet-formatting": "table",
    }
    assert results["data-chart"]["answer"]["chart_type"] and results["data-chart"]["answer"]["series"]
    assert results["data-histogram"]["answer"]["source_columns"]
    assert results["spreadsheet-formatting"]["answer"]["formatting"]


async def test_unfinished_result_answers_in_the_seeds_shape(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        request_id = (await svc.client.post("/api/ai/process", json=SEED_EXAMPLE)).json()["request_id"]
        pending = await svc.client.get(f"/api/ai/result/{request_id}")
        await svc.client.post(f"/api/v1/requests/{request_id}/cancel")
        cancelled = await svc.client.get(f"/api/ai/result/{request_id}")
        missing = await svc.client.get(f"/api/ai/result/{uuid.uuid4()}")
    body = pending.json()
    assert body["success"] is False and body["status"] == "queued" and body["request_id"] == request_id
    assert body["message"] and body["error"]["code"] == "result_not_ready"
    assert cancelled.json()["success"] is False and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["code"] == "no_result"
    assert missing.status_code == 404


async def _submit(svc: Any, path: str, body: dict[str, Any], key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return await svc.client.post(path, json=body, headers=headers)


async def test_idempotency_key_header_and_conflicting_bodies(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    v1_body = {"kind": "spreadsheet", **SEED_EXAMPLE}
    other_body = {**v1_body, "query_text": "Something else entirely"}
    async with running_service(settings, with_worker=False) as svc:
        key = f"k-{uuid.uuid4().hex}"
        first = await _submit(svc, "/api/v1/requests", v1_body, key)
        again = await _submit(svc, "/api/v1/requests", v1_body, key)
        # The same body with the key in it (and the range written differently) is the same request.
        in_body = await _submit(
            svc, "/api/v1/requests", {**v1_body, "input_range": "d10:a1", "idempotency_key": key}, None
        )
        conflict = await _submit(svc, "/api/v1/requests", other_body, key)
        disagree = await _submit(svc, "/api/v1/requests", {**v1_body, "idempotency_key": "other"}, key)

        seed_key = f"s-{uuid.uuid4().hex}"
        seed_first = await _submit(svc, "/api/ai/process", SEED_EXAMPLE, seed_key)
        seed_again = await _submit(svc, "/api/ai/process", SEED_EXAMPLE, seed_key)
        seed_conflict = await _submit(
            svc, "/api/ai/process", {**SEED_EXAMPLE, "category": "search"}, seed_key
        )

    assert first.status_code == 202, first.text
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert in_body.status_code == 200 and in_body.json()["id"] == first.json()["id"]
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert disagree.status_code == 422
    assert (
        seed_first.status_code == 200 and seed_again.json()["request_id"] == seed_first.json()["request_id"]
    )
    assert (
        seed_conflict.status_code == 409 and seed_conflict.json()["error"]["code"] == "idempotency_conflict"
    )
