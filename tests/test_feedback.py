"""Feedback on answers (issue 8): the seed's POST /api/v1/feedback, the per-request resource, the
owner scoping, and ratings per category and template version in the metrics."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from service.pipeline.resources import shipped_resources
from service.seeding import seed
from tests.support import SEED_EXAMPLE, bearer, issue_key, make_settings, running_service


async def _completed(svc: Any, category: str) -> str:
    response = await svc.client.post("/api/ai/process", json={**SEED_EXAMPLE, "category": category})
    request_id = str(response.json()["request_id"])
    assert (await svc.wait_final(request_id))["status"] == "completed"
    return request_id


async def test_feedback_paths_and_metrics(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        async with svc.sessions() as session:  # templates in the database: answers carry a version
            await seed(session, shipped_resources())
            await session.commit()
        analysis = await _completed(svc, "analysis")
        search = await _completed(svc, "search")

        seed_shape = await svc.client.post(
            "/api/v1/feedback",
            json={
                "ai_request_id": analysis,
                "text_response": "Итог: рост",
                "rating": "good",
                "comment": "ok",
            },
        )
        assert seed_shape.status_code == 201, seed_shape.text
        assert seed_shape.json()["rating"] == "good" and seed_shape.json()["text_response"] == "Итог: рост"

        # Rating again replaces the caller's earlier rating (one per request and caller).
        replaced = await svc.client.post(f"/api/v1/requests/{analysis}/feedback", json={"rating": 0})
        assert replaced.status_code == 200 and replaced.json()["rating"] == "bad"
        assert replaced.json()["id"] == seed_shape.json()["id"]
        listed = (await svc.client.get(f"/api/v1/requests/{analysis}/feedback")).json()
        assert [(f["rating"], f["comment"]) for f in listed] == [("bad", None)]

        thumbs = await svc.client.post(f"/api/v1/requests/{search}/feedback", json={"rating": "thumbs_up"})
        assert thumbs.status_code == 201 and thumbs.json()["rating"] == "good"

        invalid = await svc.client.post(f"/api/v1/requests/{search}/feedback", json={"rating": "meh"})
        assert invalid.status_code == 422
        unknown = await svc.client.post(
            "/api/v1/feedback", json={"ai_request_id": str(uuid.uuid4()), "rating": 1}
        )
        assert unknown.status_code == 404

        metrics = (await svc.client.get("/api/v1/metrics")).json()["feedback"]
        rows = {(r["category"], r["template_version"]): r for r in metrics["by_category_version"]}
        analysis_row = next(r for (c, _), r in rows.items() if c == "spreadsheet-analysis")
        search_row = next(r for (c, _), r in rows.items() if c == "spreadsheet-search")
        assert (analysis_row["good"], analysis_row["bad"], analysis_row["good_share"]) == (0, 1, 0.0)
        assert (search_row["good"], search_row["bad"], search_row["good_share"]) == (1, 0, 1.0)
        assert analysis_row["template_version"] is not None
        assert metrics["good"] >= 1 and metrics["bad"] >= 1


async def test_unfinished_request_cannot_be_rated(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc:
        request_id = (await svc.client.post("/api/ai/process", json=SEED_EXAMPLE)).json()["request_id"]
        response = await svc.client.post(f"/api/v1/requests/{request_id}/feedback", json={"rating": "good"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_finished"


@pytest.mark.parametrize("as_seed_path", [True, False])
async def test_feedback_is_scoped_to_the_owner(
    postgres_url: str, kafka_bootstrap: str, as_seed_path: bool
) -> None:
    """Two real API keys: feedback and its figures belong to the key's owner."""
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    keys = {"alice": await issue_key(settings, "alice"), "mallory": await issue_key(settings, "mallory")}
    async with running_service(settings) as svc:
        alice = bearer(keys["alice"])
        response = await svc.client.post("/api/ai/process", json=SEED_EXAMPLE, headers=alice)
        request_id = response.json()["request_id"]
        for _ in range(600):
            status = (await svc.client.get(f"/api/v1/requests/{request_id}", headers=alice)).json()["status"]
            if status == "completed":
                break
            await asyncio.sleep(0.05)

        def rate(owner: str) -> Any:
            headers = bearer(keys[owner])
            if as_seed_path:
                body = {"ai_request_id": request_id, "rating": "good"}
                return svc.client.post("/api/v1/feedback", json=body, headers=headers)
            return svc.client.post(
                f"/api/v1/requests/{request_id}/feedback", json={"rating": "good"}, headers=headers
            )

        assert (await rate("mallory")).status_code == 404  # someone else's request: like a missing one
        assert (await rate("alice")).status_code == 201
        theirs = await svc.client.get(
            f"/api/v1/requests/{request_id}/feedback", headers=bearer(keys["mallory"])
        )
        assert theirs.status_code == 404
        mine = await svc.client.get(f"/api/v1/requests/{request_id}/feedback", headers=alice)
        assert [f["rating"] for f in mine.json()] == ["good"]
        mallory_metrics = (await svc.client.get("/api/v1/metrics", headers=bearer(keys["mallory"]))).json()
        assert mallory_metrics["feedback"]["by_category_version"] == []
