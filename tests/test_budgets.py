"""Token budgets on live spend (at submit and in the worker before any LLM call) and /api/v1/usage."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from service.db import requests_repo
from service.db.models import AnalysisRequest
from tests.support import SEED_EXAMPLE, bearer, issue_key, make_settings, running_service

SUBMIT = {"kind": "spreadsheet", **SEED_EXAMPLE}


def budget_settings(postgres_url: str, kafka_bootstrap: str, **overrides: Any) -> Any:
    return make_settings(
        postgres_url,
        kafka_bootstrap,
        allow_anonymous=False,
        llm_price_per_1k_tokens={"dryrun": 2.0},
        **overrides,
    )


async def test_spent_budget_refuses_submits_and_usage_shows_it(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = budget_settings(postgres_url, kafka_bootstrap, budget_reserve_tokens_per_request=100)
    key = await issue_key(settings, "small budget", daily_tokens=150)
    owner = key.split("_")[1]
    headers = bearer(key)
    async with running_service(settings, with_worker=False, api_key=key) as svc:
        first = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=headers)
        assert first.status_code == 202
        # In flight, the first request holds 100 of the 150 tokens; a second still fits (0+100 < 150),
        # a third does not (0+200 >= 150): concurrent submits cannot run past the budget.
        assert (await svc.client.post("/api/v1/requests", json=SUBMIT, headers=headers)).status_code == 202
        third = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=headers)
        assert third.status_code == 429 and third.json()["error"]["code"] == "budget_exceeded"
        assert third.json()["error"]["details"]["reserved_in_flight"] == 200

        svc.start_worker()
        for response in (first,):
            final = await svc.wait_final(response.json()["id"])
            assert final["status"] in ("completed", "failed")
        await svc.stop_worker()
        usage = (await svc.client.get("/api/v1/usage", headers=headers)).json()
        day = usage["day"]
        spent = day["tokens"]["total"]
        assert spent > 150, "dryrun answers cost more than this budget"
        assert day["budget"]["limit"] == 150 and day["budget"]["remaining"] == 0
        assert day["cost"]["amount"] == round(day["tokens_by_model"]["dryrun"] / 1000 * 2.0, 6)
        assert usage["month"]["tokens"]["total"] == spent and usage["owner"] == owner

        refused = await svc.client.post("/api/ai/process", json=SEED_EXAMPLE, headers=headers)
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "budget_exceeded" and error["details"]["period"] == "day"
        assert error["details"]["spent"] == spent and error["details"]["resets_at"]
        assert 1 <= int(refused.headers["retry-after"]) <= 86_400

        # Admins read any owner's usage; users only their own.
        admin = bearer(await issue_key(settings, "admin", "admin"))
        assert (await svc.client.get(f"/api/v1/usage?owner={owner}", headers=admin)).json()["day"] == day
        other = bearer(await issue_key(settings, "other"))
        assert (await svc.client.get(f"/api/v1/usage?owner={owner}", headers=other)).status_code == 403
        assert (await svc.client.get("/api/v1/usage", headers=other)).json()["day"]["requests"]["total"] == 0


async def test_tokens_per_minute(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = budget_settings(postgres_url, kafka_bootstrap, budget_reserve_tokens_per_request=0)
    key = await issue_key(settings, "tpm", tokens_per_minute=10)
    headers = bearer(key)
    async with running_service(settings, api_key=key) as svc:
        first = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=headers)
        await svc.wait_final(first.json()["id"])
        refused = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=headers)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["details"]["period"] == "minute"


async def test_queued_request_of_an_owner_who_ran_out_meanwhile_never_reaches_the_llm(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = budget_settings(postgres_url, kafka_bootstrap)
    key = await issue_key(settings, "ran out", monthly_tokens=1000)
    owner = key.split("_")[1]
    async with running_service(settings, with_worker=False, api_key=key) as svc:
        queued = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=bearer(key))
        assert queued.status_code == 202
        # Meanwhile the owner's other work (say, another worker) spent the whole budget.
        async with svc.sessions() as session:
            spent_id = uuid.uuid4()
            await requests_repo.insert_request(
                session, {"id": spent_id, "kind": "spreadsheet", "owner_id": owner, "query_text": "x"}
            )
            await session.execute(
                update(AnalysisRequest)
                .where(AnalysisRequest.id == spent_id)
                .values(status="completed", total_tokens=1000)
            )
            await session.commit()
        svc.start_worker()
        final = await svc.wait_final(queued.json()["id"])
        assert final["status"] == "failed" and final["error"]["code"] == "budget_exceeded", final
        assert "monthly token budget of 1000" in final["error"]["message"]
        assert svc.backend.calls == []  # the LLM backend was never called for it
