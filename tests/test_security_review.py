"""Holes found by the security review, each with the test that would have caught it, and the audit's
checks that secrets stay out of logs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service import monitoring
from service.db.requests_repo import LLMAccounting
from service.webhooks.ssrf import UnsafeTarget, resolve_safe
from tests.peers.webhook_receiver import webhook_receiver
from tests.support import (
    SEED_EXAMPLE,
    CountingBackend,
    bearer,
    captured_logs,
    issue_key,
    make_settings,
    running_service,
)
from tests.test_webhooks import SECRET, dispatcher, submit_with_webhook, until, webhook_settings


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of the cloud metadata address
        "http://[::7f00:1]/hook",  # IPv4-compatible 127.0.0.1
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
        "http://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped metadata address
    ],
)
async def test_ipv6_forms_of_internal_ipv4_addresses_are_refused(url: str) -> None:
    # Python's is_global calls these public; the address they wrap is what a translator reaches.
    with pytest.raises(UnsafeTarget, match="non-public"):
        await resolve_safe(url, allow_private=False)


async def test_ipv6_forms_of_public_ipv4_addresses_stay_allowed() -> None:
    for url in ("http://[64:ff9b::808:808]/hook", "http://[2002:808:808::]/hook"):
        target = await resolve_safe(url, allow_private=False)
        assert target.address.startswith(("64:ff9b::", "2002:"))


async def test_a_refused_target_does_not_say_which_internal_address_it_resolves_to() -> None:
    # "localhost" resolves on every machine; the answer must not map names to internal addresses.
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_safe("http://localhost:8080/hook", allow_private=False)
    message = str(refused.value)
    assert "non-public" in message and "127.0.0.1" not in message and "::1" not in message


async def test_webhook_endpoints_per_owner_are_capped_and_deletable(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    """Every default endpoint gets a POST per finished request: uncapped, one key could turn the
    service into a flood of any public URL. The cap is per owner; DELETE frees a place."""
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        allow_anonymous=False,
        webhook_allow_private_targets=True,
        webhook_max_endpoints_per_owner=2,
    )
    a, b = bearer(await issue_key(settings, "hooks A")), bearer(await issue_key(settings, "hooks B"))
    async with running_service(settings, with_worker=False) as svc:

        async def add(headers: dict[str, str]) -> Any:
            return await svc.client.post(
                "/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=headers
            )

        first, second, third = [await add(a) for _ in range(3)]
        assert first.status_code == second.status_code == 201
        assert third.status_code == 409 and third.json()["error"]["code"] == "webhook_endpoint_limit"
        assert "secret" not in third.text
        assert (await add(b)).status_code == 201  # the cap is A's, not everyone's

        deleted = await svc.client.delete(f"/api/v1/webhooks/endpoints/{first.json()['id']}", headers=a)
        assert deleted.status_code == 200 and deleted.json()["enabled"] is False
        assert "secret" not in deleted.json()
        listed = (await svc.client.get("/api/v1/webhooks/endpoints", headers=a)).json()
        enabled = {endpoint["id"]: endpoint["enabled"] for endpoint in listed}
        assert enabled == {first.json()["id"]: False, second.json()["id"]: True}
        assert (await add(a)).status_code == 201


async def test_classify_asks_no_model_once_the_callers_budget_is_spent(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    """POST /api/v1/classify may ask the LLM (below CLASSIFIER_LLM_THRESHOLD): with a spent budget it
    must keep to the local guess, or classify would be a way to spend tokens past any budget."""
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, classifier_llm_threshold=1.0
    )
    key = await issue_key(settings, "classify budget", daily_tokens=10)
    async with running_service(settings, api_key=key) as svc:
        counting = CountingBackend(svc.app.state.runtime.llm)
        svc.app.state.runtime = dataclasses.replace(svc.app.state.runtime, _llm=counting)
        fresh = await svc.client.post("/api/v1/classify", json={"query_text": "сделай что-нибудь с этим"})
        assert fresh.status_code == 200 and len(counting.calls) == 1  # budget left: the model is asked

        submitted = await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})
        assert (await svc.wait_final(submitted.json()["id"]))["status"] == "completed"  # > 10 tokens

        spent = await svc.client.post("/api/v1/classify", json={"query_text": "посмотри на эти цифры"})
        assert spent.status_code == 200, spent.text
        assert len(counting.calls) == 1, "the model was asked on a spent budget"
        assert spent.json()["source"] == "local" and "budget_exceeded" in spent.json()["message"]
        seed = await svc.client.post("/api/prompts/classify", json={"prompt_text": "глянь таблицу"})
        assert seed.status_code == 200 and len(counting.calls) == 1


async def test_webhook_secrets_never_reach_the_log(postgres_url: str, kafka_bootstrap: str) -> None:
    """Signing secrets (the shared WEBHOOK_SECRETS and an endpoint's own) stay out of every log line,
    through registration, signed deliveries, a failing attempt and its retry."""
    # A key of its own: an endpoint of the shared anonymous owner would outlive this test.
    settings = webhook_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    key = await issue_key(settings, "webhook logs")
    with captured_logs() as logs, webhook_receiver(SECRET) as receiver:
        receiver.faults.server_errors = 1
        async with running_service(settings, api_key=key) as svc, dispatcher(settings):
            created = await svc.client.post("/api/v1/webhooks/endpoints", json={"url": receiver.url})
            own_secret = created.json()["secret"]
            await submit_with_webhook(svc, receiver.url)
            await until(lambda: len(receiver.answered(204)) >= 1)
    text = "\n".join(logs)
    assert "webhook" in text  # the dispatcher did log (its failure and retry among others)
    for secret in (SECRET, own_secret):
        assert secret not in text and secret.removeprefix("whsec_") not in text
    assert "whsec_" not in text


def test_model_label_values_stay_bounded_whatever_the_provider_reports() -> None:
    """A provider that echoes the model a caller asked for must not mint a time series per name."""
    for number in range(3 * monitoring.MAX_MODEL_LABELS):
        monitoring.llm_used(
            LLMAccounting(prompt_tokens=1, completion_tokens=1, total_tokens=2, calls=1,
                          latency_ms=1.0, backend="echo", model=f"caller-chosen-{number}-" + "x" * 500)
        )  # fmt: skip
    models = {
        sample.labels["model"]
        for metric in monitoring.LLM_TOKENS.collect()
        for sample in metric.samples
        if sample.labels["backend"] == "echo"
    }
    assert len(models) <= monitoring.MAX_MODEL_LABELS + 1
    assert "other" in models and all(len(model) <= 64 for model in models)


async def test_oversized_bodies_get_413_before_anything_reads_them(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    """FastAPI reads a body before the API key check: without a cap anyone could make the API buffer
    and parse any amount. Declared (Content-Length) and streamed (chunked) bodies are both cut off."""
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, max_request_body_bytes=4096
    )
    key = await issue_key(settings, "body limit")
    big = {"kind": "spreadsheet", **SEED_EXAMPLE, "query_text": "x" * 10_000}
    with captured_logs() as logs:
        async with running_service(settings, with_worker=False) as svc:
            declared = await svc.client.post("/api/v1/requests", json=big)
            assert declared.status_code == 413, declared.text
            assert declared.json()["error"]["code"] == "payload_too_large"
            assert declared.headers["x-content-type-options"] == "nosniff"

            pulled = 0

            async def chunks() -> AsyncIterator[bytes]:
                nonlocal pulled
                for _ in range(1000):  # 1 MB offered in 1 KB parts
                    pulled += 1
                    yield b" " * 1024

            headers = {"content-type": "application/json", **bearer(key)}
            streamed = await svc.client.post("/api/v1/requests", content=chunks(), headers=headers)
            assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
            assert pulled < 10, "the body was read on past the cap"

            # Under the cap nothing changes: 401 without a key, 202 with one.
            small = {"kind": "spreadsheet", **SEED_EXAMPLE}
            assert (await svc.client.post("/api/v1/requests", json=small)).status_code == 401
            accepted = await svc.client.post("/api/v1/requests", json=small, headers=bearer(key))
            assert accepted.status_code == 202, accepted.text
            # A native batch reads its own body after the key check, bounded by BATCH_MAX_BYTES.
            lines = [{**small, "query_text": "x" * 1000, "custom_id": str(n)} for n in range(8)]
            batch = await svc.client.post("/api/v1/batches", json=lines, headers=bearer(key))
            assert batch.status_code == 201, batch.text
    assert not [line for line in logs if "ERROR" in line or "Traceback" in line]


async def test_metadata_addresses_stay_refused_when_private_targets_are_allowed() -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/hook", "http://0.0.0.0/hook",
                "http://[::ffff:169.254.169.254]/", "http://224.0.0.1/hook"):  # fmt: skip
        with pytest.raises(UnsafeTarget):
            await resolve_safe(url, allow_private=True)
    assert (await resolve_safe("http://10.0.0.1/hook", allow_private=True)).address == "10.0.0.1"


async def test_unparsable_webhook_urls_are_422_not_500(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, webhook_allow_private_targets=True, webhook_secrets="whsec_" + "A" * 32
    )
    bad_urls = (
        "http://example.org:99999/",
        "http://[::1/",
        "http://example.org:abc/",
        f"http://{'a' * 300}.com/",
    )
    async with running_service(settings, with_worker=False) as svc:
        for url in bad_urls:
            endpoint = await svc.client.post("/api/v1/webhooks/endpoints", json={"url": url})
            assert endpoint.status_code == 422, (url, endpoint.text)
            submit = await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE, "webhook": {"url": url}})
            assert submit.status_code == 422, (url, submit.text)
