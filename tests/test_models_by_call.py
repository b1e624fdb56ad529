"""Which model each call names (issue 8): classification, answers, per category; seen by the peer."""

from __future__ import annotations

import json

from service.llm.base import ChatRequest
from service.llm.registry import build_backend
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - peers are used by name
from tests.peers.fixtures import cloud_values, openai_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.peers.openai_server import OpenAIPeer
from tests.support import SEED_EXAMPLE, make_settings, running_service

# One reply that serves as a classification (category) and as a table answer (values).
REPLY = json.dumps({"category": "spreadsheet-search", "confidence": 0.9, "values": [["A", 1]], "text": "t"})


def _models(peer: OpenAIPeer | GigaChatPeer) -> list[tuple[str, str]]:
    """(model, first words of the system prompt) of each completion the peer received."""
    return [
        (call.body["model"], call.body["messages"][0]["content"][:30])
        for call in peer.calls_to("/chat/completions")
    ]


async def test_classify_generate_and_per_category_models(
    openai_upstream: OpenAIPeer, postgres_url: str, kafka_bootstrap: str
) -> None:
    openai_upstream.reply_text = REPLY
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        **openai_values(openai_upstream),
        llm_classify_model="cheap-classifier",
        llm_generate_model="general-writer",
        llm_model_by_category={"spreadsheet-search": "strongest"},
        classifier_llm_threshold=1.0,  # always ask the model to classify
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        # No category: classified by the model (→ search), answered by search's own model.
        unclassified = {"kind": "spreadsheet", **SEED_EXAMPLE, "query_text": "Найди товар B"}
        unclassified.pop("category")
        first = (await svc.submit(unclassified)).json()["id"]
        assert (await svc.wait_final(first))["category"] == "spreadsheet-search"
        calls_for_first = _models(openai_upstream)
        openai_upstream.reset()
        openai_upstream.reply_text = REPLY
        # A category of its own, with no per-category model: the generate model.
        second = (await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"]
        assert (await svc.wait_final(second))["status"] == "completed"
        calls_for_second = _models(openai_upstream)
        usage = (await svc.client.get(f"/api/v1/requests/{second}/result")).json()["usage"]

    assert [model for model, _ in calls_for_first] == ["cheap-classifier", "strongest"]
    assert calls_for_first[0][1].startswith("You route requests")
    assert [model for model, _ in calls_for_second] == ["general-writer"]
    assert usage["model"] == "general-writer"


async def test_without_model_settings_the_backend_model_is_used(
    openai_upstream: OpenAIPeer, postgres_url: str, kafka_bootstrap: str
) -> None:
    openai_upstream.reply_text = REPLY
    settings = make_settings(
        postgres_url, kafka_bootstrap, **openai_values(openai_upstream), openai_model="base-model"
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        request_id = (await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"]
        assert (await svc.wait_final(request_id))["status"] == "completed"
    assert [model for model, _ in _models(openai_upstream)] == ["base-model"]


async def test_fallback_answers_with_its_own_model(
    openai_upstream: OpenAIPeer, gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    """A per-call model names one of the primary's models; the fallback must not be sent it."""
    openai_upstream.faults.server_errors = 100
    settings = make_settings(
        "sqlite+aiosqlite://",
        "",
        **openai_values(openai_upstream),
        llm_fallback_backend="gigachat-cloud",
        **{k: v for k, v in cloud_values(gigachat_cloud, certs).items() if k != "llm_backend"},
        gigachat_model="GigaChat",
        llm_max_attempts=1,
    )

    backend = build_backend(settings)
    await backend.start()
    try:
        answer = await backend.chat(ChatRequest(system="s", user="u", model="gpt-strongest"))
    finally:
        await backend.close()
    assert answer.backend == "gigachat-cloud"
    assert [model for model, _ in _models(openai_upstream)] == ["gpt-strongest"]
    assert [model for model, _ in _models(gigachat_cloud)] == ["GigaChat"]
