"""Retries, backoff, the attempt cap, rate limits and fallback, observed from the peers' side."""

from __future__ import annotations

import asyncio
import random
import socket
from itertools import pairwise
from typing import Any

import pytest

from service.llm.base import AuthenticationFailed, LLMConnectionError, Overloaded, RateLimited
from service.llm.openai_compat import OpenAIBackend
from service.llm.ratelimit import RateLimiter
from service.llm.registry import backend_health, build_backend
from service.llm.resilience import ResilientBackend, RetryPolicy
from tests.llm.conftest import ask, cloud_settings, openai_settings, started
from tests.peers.certs import CertBundle
from tests.peers.gigachat_server import GigaChatPeer
from tests.peers.openai_server import OpenAIPeer

FAST_RETRIES: dict[str, Any] = {"llm_retry_base_seconds": 0.01, "llm_retry_max_seconds": 2.0}


def arrivals(peer: OpenAIPeer | GigaChatPeer) -> list[float]:
    return sorted(call.at for call in peer.calls_to("/chat/completions"))


def assert_window_holds(times: list[float], budget: int, window: float) -> None:
    """No `window`-long span contains more than `budget` arrivals."""
    for first, later in zip(times, times[budget:], strict=False):
        assert later - first >= window, f"{budget + 1} calls within {later - first:.3f}s"


async def test_retryable_errors_are_retried_until_success(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.faults.server_errors = 2
    settings = openai_settings(openai_upstream, llm_max_attempts=3, **FAST_RETRIES)
    async with started(build_backend(settings)) as backend:
        answer = await backend.chat(ask("third time lucky"))
    assert answer.text == "echo: third time lucky"
    assert len(arrivals(openai_upstream)) == 3


async def test_attempt_cap_raises_the_last_error(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.faults.server_errors, openai_upstream.faults.server_error_status = 10, 503
    settings = openai_settings(openai_upstream, llm_max_attempts=3, **FAST_RETRIES)
    async with started(build_backend(settings)) as backend:
        with pytest.raises(Overloaded, match="503"):
            await backend.chat(ask())
    assert len(arrivals(openai_upstream)) == 3


async def test_final_errors_are_not_retried(openai_upstream: OpenAIPeer) -> None:
    settings = openai_settings(openai_upstream, openai_api_key="sk-not-valid-000", **FAST_RETRIES)
    async with started(build_backend(settings)) as backend:
        with pytest.raises(AuthenticationFailed):
            await backend.chat(ask())
    assert len(arrivals(openai_upstream)) == 1


async def test_backoff_honours_retry_after(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    gigachat_cloud.faults.rate_limited, gigachat_cloud.faults.retry_after = 2, "1"
    settings = cloud_settings(gigachat_cloud, certs, **FAST_RETRIES)
    async with started(build_backend(settings)) as backend:
        assert (await backend.chat(ask("patient"))).text == "echo: patient"
    times = arrivals(gigachat_cloud)
    assert len(times) == 3
    assert all(later - earlier >= 1.0 for earlier, later in pairwise(times))


async def test_retry_after_is_capped_by_the_retry_maximum(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.faults.rate_limited, openai_upstream.faults.retry_after = 1, "3600"
    settings = openai_settings(openai_upstream, llm_retry_base_seconds=0.01, llm_retry_max_seconds=0.2)
    async with started(build_backend(settings)) as backend, asyncio.timeout(30):
        assert (await backend.chat(ask())).text == "echo: hello"
    assert len(arrivals(openai_upstream)) == 2


def test_delay_is_full_jitter_within_bounds() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=0.5, max_seconds=4.0)
    random.seed(7)
    plain = Overloaded("x")
    for attempt in range(1, 8):
        delays = [policy.delay(attempt, plain) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the range, not a constant
    assert policy.delay(1, RateLimited("x", retry_after=3.0)) >= 3.0
    assert policy.delay(1, RateLimited("x", retry_after=99.0)) == 4.0


async def test_request_rate_never_exceeds_the_budget(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.faults.delay_seconds = 0.05
    limiter = RateLimiter(max_requests=3, window_seconds=1.0)
    backend = ResilientBackend(
        OpenAIBackend(openai_settings(openai_upstream)), policy=RetryPolicy(), limiters={"openai": limiter}
    )
    async with started(backend):
        answers = await asyncio.gather(*(backend.chat(ask(f"q{i}")) for i in range(10)))
    assert sorted(a.text for a in answers) == sorted(f"echo: q{i}" for i in range(10))
    times = arrivals(openai_upstream)
    assert len(times) == 10
    assert_window_holds(times, budget=3, window=1.0)


async def test_token_rate_never_exceeds_the_budget(openai_upstream: OpenAIPeer) -> None:
    # Each call's prompt is estimated at 18 tokens and the peer reports 18 used: two fit in 40.
    limiter = RateLimiter(max_tokens=40, window_seconds=1.0)
    backend = ResilientBackend(
        OpenAIBackend(openai_settings(openai_upstream)), policy=RetryPolicy(), limiters={"openai": limiter}
    )
    user = "x" * 56  # 14 tokens + 4 for the system prompt
    async with started(backend):
        await asyncio.gather(*(backend.chat(ask(user)) for _ in range(6)))
    assert_window_holds(arrivals(openai_upstream), budget=2, window=1.0)


async def test_reported_usage_replaces_the_estimate() -> None:
    limiter = RateLimiter(max_tokens=40, window_seconds=0.5)
    async with limiter.reserve(5) as first:
        first.record_usage(30)  # the server said the call cost far more than the prompt suggested
    async with limiter.reserve(5):
        pass  # 35 of 40: fits
    loop = asyncio.get_running_loop()
    released = loop.time()
    async with limiter.reserve(10):  # 45 would exceed the budget: waits until the first call ages out
        granted = loop.time()
    assert granted - released >= 0.4


async def test_the_queue_is_fair(openai_upstream: OpenAIPeer) -> None:
    # A large request queued first is served before small ones queued after it.
    limiter = RateLimiter(max_tokens=20, window_seconds=0.3)
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        async with limiter.reserve(tokens):
            order.append(name)

    async with limiter.reserve(15):
        pass
    waiting = [asyncio.create_task(take("big", 20))]
    await asyncio.sleep(0.01)
    waiting += [asyncio.create_task(take(f"small{i}", 2)) for i in range(3)]
    await asyncio.gather(*waiting)
    assert order[0] == "big"


async def test_fallback_takes_over_while_the_primary_is_down(
    gigachat_cloud: GigaChatPeer, openai_upstream: OpenAIPeer, certs: CertBundle
) -> None:
    gigachat_cloud.faults.server_errors = 1000
    settings = cloud_settings(
        gigachat_cloud,
        certs,
        llm_fallback_backend="openai",
        openai_base_url=openai_upstream.base_url,
        openai_api_key=openai_upstream.api_key,
        llm_max_attempts=2,
        llm_fallback_cooldown_seconds=1.0,
        **FAST_RETRIES,
    )
    async with started(build_backend(settings)) as backend:
        first = await backend.chat(ask("one"))
        second = await backend.chat(ask("two"))  # primary still cooling down: not even tried
        primary_calls = len(arrivals(gigachat_cloud))
        gigachat_cloud.faults.server_errors = 0
        await asyncio.sleep(1.1)
        third = await backend.chat(ask("three"))

    assert (first.backend, first.text) == ("openai", "echo: one")
    assert (second.backend, second.text) == ("openai", "echo: two")
    assert primary_calls == 2
    assert (third.backend, third.text) == ("gigachat-cloud", "echo: three")
    assert len(arrivals(openai_upstream)) == 2


async def test_fallback_when_the_primary_is_unreachable(
    openai_upstream: OpenAIPeer, gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    settings = cloud_settings(
        gigachat_cloud,
        certs,
        llm_backend="openai",
        llm_fallback_backend="gigachat-cloud",
        openai_base_url=dead,
        openai_api_key="sk-unused-dead",
        llm_max_attempts=2,
        **FAST_RETRIES,
    )
    async with started(build_backend(settings)) as backend:
        answer = await backend.chat(ask("rescued"))
        health = await backend.health()
    assert (answer.backend, answer.text) == ("gigachat-cloud", "echo: rescued")
    assert health["ok"] is True
    assert health["primary"]["ok"] is False and health["primary"]["error"] == LLMConnectionError.code
    assert health["fallback"]["ok"] is True


async def test_no_fallback_for_final_errors(
    openai_upstream: OpenAIPeer, gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    settings = cloud_settings(
        gigachat_cloud,
        certs,
        llm_backend="openai",
        llm_fallback_backend="gigachat-cloud",
        openai_base_url=openai_upstream.base_url,
        openai_api_key="sk-revoked-key-1",
        **FAST_RETRIES,
    )
    async with started(build_backend(settings)) as backend:
        with pytest.raises(AuthenticationFailed):
            await backend.chat(ask())
    assert gigachat_cloud.calls == []


async def test_health_is_cached_briefly(openai_upstream: OpenAIPeer) -> None:
    async with started(build_backend(openai_settings(openai_upstream))) as backend:
        reports = await asyncio.gather(*(backend_health(backend, max_age_seconds=60) for _ in range(5)))
        assert len(openai_upstream.calls_to("/models")) == 1
        fresh = await backend_health(backend, max_age_seconds=0)
    assert all(report["ok"] for report in reports) and fresh["ok"]
    assert len(openai_upstream.calls_to("/models")) == 2
    assert openai_upstream.calls_to("/chat/completions") == []
