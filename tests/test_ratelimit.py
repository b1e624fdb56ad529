"""Per-key rate limits on submit and classify: 429 with headers, shared through real Redis by two
API instances (each with its own Redis client and limiter storage), in memory without Redis, and
fail-open / fail-closed when Redis is unreachable."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from service.app import create_app
from tests.support import SEED_EXAMPLE, bearer, captured_logs, issue_key, make_settings, running_service

REDIS_URL = "redis://127.0.0.1:6379/0"
SUBMIT = {"kind": "spreadsheet", **SEED_EXAMPLE}


def limited_settings(postgres_url: str, kafka_bootstrap: str, **overrides: Any) -> Any:
    # A prefix of its own: other tests use the same Redis server at the same time.
    prefix = f"test-ratelimit-{uuid.uuid4().hex[:8]}"
    return make_settings(postgres_url, kafka_bootstrap, rate_limit_key_prefix=prefix, **overrides)


def assert_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == limit
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60


async def test_n_plus_one_submits_get_429_in_memory(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = limited_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    key = bearer(await issue_key(settings, "three a minute", requests_per_minute=3))
    other = bearer(await issue_key(settings, "someone else", requests_per_minute=3))
    async with running_service(settings, with_worker=False) as svc:
        assert svc.app.state.runtime.rate_limiter.shared is False
        remaining = []
        for path, body in (("/api/v1/requests", SUBMIT), ("/api/ai/process", SEED_EXAMPLE)):
            response = await svc.client.post(path, json=body, headers=key)
            assert response.status_code in (200, 202), response.text
            assert response.headers["ratelimit-limit"] == "3"
            remaining.append(int(response.headers["ratelimit-remaining"]))
        # classify counts against the same figure
        classified = await svc.client.post("/api/v1/classify", json={"query_text": "sum it"}, headers=key)
        assert classified.status_code == 200 and classified.headers["ratelimit-remaining"] == "0"
        assert remaining == [2, 1]
        assert_limited(await svc.client.post("/api/v1/requests", json=SUBMIT, headers=key), 3)
        assert_limited(
            await svc.client.post("/api/prompts/classify", json={"query_text": "x"}, headers=key), 3
        )
        # Another key has its own counter; reads are not limited.
        assert (await svc.client.post("/api/v1/requests", json=SUBMIT, headers=other)).status_code == 202
        assert (await svc.client.get("/api/v1/categories", headers=key)).status_code == 200


async def test_anonymous_callers_are_limited_per_client_address(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = limited_settings(postgres_url, kafka_bootstrap, anonymous_requests_per_minute=2)
    app = create_app(settings)
    async with app.router.lifespan_context(app):

        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://test")

        async with client("10.0.0.1") as first, client("10.0.0.2") as second:
            for _ in range(2):
                assert (await first.post("/api/ai/process", json=SEED_EXAMPLE)).status_code == 200
            assert_limited(await first.post("/api/ai/process", json=SEED_EXAMPLE), 2)
            assert (await second.post("/api/ai/process", json=SEED_EXAMPLE)).status_code == 200


async def test_the_limit_holds_across_two_api_instances_sharing_redis(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = limited_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, redis_url=REDIS_URL)
    key = bearer(await issue_key(settings, "five a minute", requests_per_minute=5))
    # Two applications, each with its own lifespan, Redis client and limiter storage: what two API
    # processes behind one load balancer have in common is the Redis server only.
    async with (
        running_service(settings, with_worker=False) as one,
        running_service(settings, with_worker=False) as two,
    ):
        assert one.app.state.runtime.rate_limiter.shared and two.app.state.runtime.rate_limiter.shared
        assert one.app.state.runtime.rate_limiter is not two.app.state.runtime.rate_limiter
        statuses = []
        for index in range(5):
            svc = one if index % 2 == 0 else two
            statuses.append((await svc.client.post("/api/v1/requests", json=SUBMIT, headers=key)).status_code)
        assert statuses == [202] * 5
        assert_limited(await two.client.post("/api/v1/requests", json=SUBMIT, headers=key), 5)
        assert_limited(await one.client.post("/api/v1/requests", json=SUBMIT, headers=key), 5)


async def test_unreachable_redis_fails_open_or_closed_never_500(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for fail_open, expected in ((True, 202), (False, 503)):
        settings = limited_settings(
            postgres_url,
            kafka_bootstrap,
            redis_url=down,
            rate_limit_fail_open=fail_open,
            allow_anonymous=False,
        )
        key = bearer(await issue_key(settings, f"fail-open={fail_open}", requests_per_minute=1))
        with captured_logs() as logs:
            async with running_service(settings, with_worker=False) as svc:
                for _ in range(3):  # over the limit of 1, but nothing can count it
                    response = await svc.client.post("/api/v1/requests", json=SUBMIT, headers=key)
                    assert response.status_code == expected, response.text
        assert sum("rate-limit store unreachable" in line for line in logs) == 1  # once per outage
        if fail_open:
            assert "ratelimit-limit" not in response.headers
        else:
            assert response.json()["error"]["code"] == "rate_limiter_unavailable"
            assert response.headers["retry-after"]
