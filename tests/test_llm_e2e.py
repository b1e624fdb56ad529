"""Each real backend end to end: API → Kafka → worker → local peer speaking the real protocol (TLS, mTLS)."""

from __future__ import annotations

from typing import Any

import pytest

from service.llm.registry import build_backend
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - certs and peers are used by name
from tests.peers.fixtures import cloud_values, mtls_values, openai_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.peers.openai_server import OpenAIPeer
from tests.support import SEED_EXAMPLE, make_settings, running_service

MODEL_ANSWER = (
    "Here is the result:\n```json\n"
    '{"values": [["Товар", "Итого"], ["Товар A", 330], ["Товар B", 265]], "text": "Totals per row",}\n'
    "```\nHope this helps!"
)
REQUEST = {"kind": "spreadsheet", **SEED_EXAMPLE}


def backend_settings(kind: str, peer: Any, certs: CertBundle | None = None) -> dict[str, Any]:
    if kind == "openai":
        return openai_values(peer)
    assert certs is not None
    return cloud_values(peer, certs) if kind == "gigachat-cloud" else mtls_values(peer, certs)


@pytest.fixture(params=["gigachat-cloud", "gigachat-mtls", "openai"])
def backend_peer(request: pytest.FixtureRequest) -> tuple[str, GigaChatPeer | OpenAIPeer]:
    fixture = {
        "gigachat-cloud": "gigachat_cloud",
        "gigachat-mtls": "gigachat_mtls",
        "openai": "openai_upstream",
    }[request.param]
    return request.param, request.getfixturevalue(fixture)


async def test_each_backend_completes_a_request_through_broker_and_worker(
    backend_peer: tuple[str, Any], certs: CertBundle, postgres_url: str, kafka_bootstrap: str
) -> None:
    kind, peer = backend_peer
    peer.reply_text = MODEL_ANSWER
    peer.faults.rate_limited = 1  # the first call is throttled: the worker retries after Retry-After
    peer.faults.retry_after = "0"
    settings = make_settings(
        postgres_url, kafka_bootstrap, llm_retry_base_seconds=0.01, **backend_settings(kind, peer, certs)
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        request_id = (await svc.submit(REQUEST)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed", final
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()
        assert result["result"]["values"] == [["Товар", "Итого"], ["Товар A", 330], ["Товар B", 265]]
        assert result["usage"]["backend"] == kind
        assert result["usage"]["total_tokens"] > 0
        completions = peer.calls_to("/chat/completions")
        assert len(completions) == 2  # one 429, one answer
        prompt = str(completions[-1].body)
        assert "Товар A" in prompt and "A1" in prompt  # the range reached the model with its addresses

        health = (await svc.client.get("/api/v1/health")).json()
        assert health["components"]["llm"]["ok"] is True


async def test_a_backend_that_keeps_failing_fails_the_request_clearly(
    openai_upstream: OpenAIPeer, postgres_url: str, kafka_bootstrap: str
) -> None:
    openai_upstream.faults.server_errors = 100
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        llm_max_attempts=2,
        llm_retry_base_seconds=0.01,
        **backend_settings("openai", openai_upstream),
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        request_id = (await svc.submit(REQUEST)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "failed"
        assert final["error"]["code"] == "llm_unavailable"
        assert openai_upstream.api_key not in str(final)
        assert len(openai_upstream.calls_to("/chat/completions")) == 2


@pytest.mark.parametrize(
    ("kind", "finish_reason"), [("gigachat-cloud", "blacklist"), ("openai", "content_filter")]
)
async def test_a_moderated_answer_fails_the_request_but_its_tokens_are_counted(
    kind: str,
    finish_reason: str,
    request: pytest.FixtureRequest,
    certs: CertBundle,
    postgres_url: str,
    kafka_bootstrap: str,
) -> None:
    peer: Any = request.getfixturevalue("openai_upstream" if kind == "openai" else "gigachat_cloud")
    peer.finish_reason = finish_reason
    settings = make_settings(postgres_url, kafka_bootstrap, **backend_settings(kind, peer, certs))
    async with running_service(settings, backend=build_backend(settings)) as svc:
        request_id = (await svc.submit(REQUEST)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "failed" and final["error"]["code"] == "llm_content_rejected", final
        tokens = (await svc.client.get("/api/v1/metrics")).json()["tokens"]
    assert len(peer.calls_to("/chat/completions")) == 1  # final: not retried
    # The provider billed the refused answer: the usage statistics show it.
    assert tokens["completion"] > 0 and tokens["total"] == tokens["prompt"] + tokens["completion"] > 0, tokens
