"""Model policy and prices (issue 17): allowed models per settings and per key, cost per model."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from service.llm.registry import build_backend
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - certs and peers are used by name
from tests.peers.fixtures import cloud_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.support import bearer, issue_key, make_settings, running_service
from tests.test_llm_e2e import MODEL_ANSWER
from tests.test_prompt_caching import sheet


def chat(model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    return body if model is None else {**body, "model": model}


async def test_a_model_outside_the_settings_or_the_keys_list_gets_400(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, llm_allowed_models=["GigaChat", "GigaChat-Pro"])
    async with running_service(settings, with_worker=False) as svc:
        admin = await issue_key(settings, "ops", "admin")
        created = await svc.client.post(
            "/api/v1/keys", json={"name": "narrow", "allowed_models": ["GigaChat"]}, headers=bearer(admin)
        )
        assert created.status_code == 201, created.text
        assert created.json()["allowed_models"] == ["GigaChat"]
        narrow, wide = created.json()["secret"], await issue_key(settings, "wide")

        async def submit(key: str, model: str | None) -> Any:
            return await svc.client.post("/api/v1/requests", json=chat(model), headers=bearer(key))

        refused = await submit(wide, "GigaChat-Max")  # not in LLM_ALLOWED_MODELS
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_not_allowed"
        assert "GigaChat-Max" in refused.json()["error"]["message"]
        assert (await submit(wide, "GigaChat-Pro")).status_code == 202
        assert (await submit(narrow, "GigaChat-Pro")).status_code == 400  # the key's own list narrows it
        assert (await submit(narrow, "GigaChat")).status_code == 202
        assert (await submit(narrow, None)).status_code == 202  # the configured model: the operator's

        body = {"model": "GigaChat-Pro", "messages": [{"role": "user", "content": "Hi"}]}
        v1 = await svc.client.post("/v1/chat/completions", json=body, headers=bearer(narrow))
        assert v1.status_code == 400
        error = v1.json()["error"]  # OpenAI's shape
        assert error["code"] == "model_not_allowed" and error["type"] == "invalid_request_error"

        line = {"custom_id": "1", **chat("GigaChat-Max")}
        batch = await svc.client.post(
            "/api/v1/batches",
            content=orjson.dumps([line]),
            headers={**bearer(wide), "Content-Type": "application/json"},
        )
        assert batch.status_code in (400, 422), batch.text
        assert batch.json()["error"]["details"][0]["code"] == "model_not_allowed"


async def test_usage_cost_follows_the_price_table(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, own_postgres_url: str, kafka_bootstrap: str
) -> None:
    gigachat_cloud.reply_text = MODEL_ANSWER
    prices = {"GigaChat": {"prompt": 1.0, "completion": 2.0, "cached_prompt": 0.1}}
    settings = make_settings(
        own_postgres_url,
        kafka_bootstrap,
        answer_cache=True,
        llm_prices=prices,
        **cloud_values(gigachat_cloud, certs),
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        key = await issue_key(settings, "sheets")
        usages = []
        for product in ("Товар A", "Товар B", "Товар B"):  # the last one is an answer-cache hit
            response = await svc.client.post("/api/v1/requests", json=sheet(product), headers=bearer(key))
            request_id = response.json()["id"]
            for _ in range(300):
                status = (await svc.client.get(f"/api/v1/requests/{request_id}", headers=bearer(key))).json()
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.05)
            result = await svc.client.get(f"/api/v1/requests/{request_id}/result", headers=bearer(key))
            usages.append(result.json()["usage"])
        day = (await svc.client.get("/api/v1/usage", headers=bearer(key))).json()["day"]
        metrics = (await svc.client.get("/api/v1/metrics", headers=bearer(key))).json()
    assert usages[1]["cached_prompt_tokens"] > 0 and usages[2]["total_tokens"] == 0
    expected = (
        sum(
            (u["prompt_tokens"] - u["cached_prompt_tokens"]) * 1.0
            + u["cached_prompt_tokens"] * 0.1
            + u["completion_tokens"] * 2.0
            for u in usages
        )
        / 1000
    )
    assert day["cost"] == {"amount": round(expected, 6), "unpriced_tokens": 0}
    assert day["tokens"]["cached_prompt"] == usages[1]["cached_prompt_tokens"]
    assert (
        day["answer_cache"]["answers"] == 1
        and day["answer_cache"]["tokens_saved"] == usages[1]["total_tokens"]
    )
    assert metrics["cost"] == round(expected, 6)
    assert metrics["answer_cache"] == {"hits": 1, "hit_rate": round(1 / 3, 4)}
