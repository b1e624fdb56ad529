"""Choosing the backend from settings, including the seed's GIGACHAT_RUN_MODE and variable names."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from service.config import Settings
from service.llm.base import LLMBackend
from service.llm.capacity import LocalCapacity, SharedCapacity
from service.llm.gigachat import GigaChatBackend
from service.llm.openai_compat import OpenAIBackend
from service.llm.registry import build_backend
from tests.llm.conftest import ask, started
from tests.peers.certs import CertBundle
from tests.peers.gigachat_server import GigaChatPeer


def from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "dryrun"),
        ({"GIGACHAT_RUN_MODE": "dryrun"}, "dryrun"),
        ({"GIGACHAT_RUN_MODE": "cloud"}, "gigachat-cloud"),
        ({"GIGACHAT_RUN_MODE": "mtls"}, "gigachat-mtls"),
        ({"LLM_BACKEND": "openai"}, "openai"),
        ({"GIGACHAT_RUN_MODE": "mtls", "LLM_BACKEND": "gigachat-cloud"}, "gigachat-cloud"),
    ],
)
def test_backend_is_chosen_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    backend = build_backend(from_env(monkeypatch, **env))
    assert backend.name == expected
    assert isinstance(backend.primary, LLMBackend)
    assert backend.fallback is None


def test_fallback_and_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(
        monkeypatch,
        LLM_BACKEND="gigachat-cloud",
        LLM_FALLBACK_BACKEND="openai",
        GIGACHAT_MAX_REQUESTS_PER_MINUTE="30",
        LLM_TOKENS_PER_MINUTE="9000",
        LLM_MAX_ATTEMPTS="5",
        LLM_MAX_CONCURRENCY="10",
    )
    backend = build_backend(settings)
    assert isinstance(backend.primary, GigaChatBackend) and isinstance(backend.fallback, OpenAIBackend)
    assert backend.policy.max_attempts == 5
    limiter = backend._limiters["gigachat-cloud"]
    assert isinstance(limiter, LocalCapacity)  # no Redis: per process
    assert (limiter.max_concurrency, limiter.max_requests, limiter.max_tokens) == (10, 30, 9000)
    assert backend._limiters["openai"] is not limiter  # a budget per backend


async def test_with_redis_the_capacity_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, LLM_BACKEND="openai", LLM_MAX_CONCURRENCY="10")
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        limiter = build_backend(settings, redis)._limiters["openai"]
    finally:
        await redis.aclose()
    assert isinstance(limiter, SharedCapacity) and limiter.max_concurrency == 10


async def test_seed_variables_drive_an_mtls_backend_end_to_end(
    monkeypatch: pytest.MonkeyPatch, gigachat_mtls: GigaChatPeer, certs: CertBundle
) -> None:
    settings = from_env(
        monkeypatch,
        GIGACHAT_RUN_MODE="mtls",
        GIGACHAT_BASE_URL=gigachat_mtls.base_url,
        GIGACHAT_MODEL="GigaChat-Pro",
        GIGACHAT_MTLS_CA_BUNDLE_FILE=str(certs.ca_file),
        GIGACHAT_MTLS_CERT_FILE=str(certs.client_cert),
        GIGACHAT_MTLS_KEY_FILE=str(certs.client_key_encrypted),
        GIGACHAT_MTLS_KEY_FILE_PASSWORD=certs.key_password,
        GIGACHAT_MAX_TOKENS_PER_REQUEST="512",
        # Set in the environment but meaningless for mTLS: the SDK must not pick it up and do OAuth.
        GIGACHAT_CREDENTIALS="c2hvdWxkOm5vdC1iZS11c2Vk",
    )
    assert settings.llm_max_tokens == 512
    async with started(build_backend(settings)) as backend:
        answer = await backend.chat(ask("seed", max_tokens=settings.llm_max_tokens))
    assert (answer.backend, answer.text, answer.model) == (
        "gigachat-mtls",
        "echo: seed",
        "GigaChat-Pro:2.0.28.2",
    )
    assert gigachat_mtls.calls_to("/oauth") == []
    assert gigachat_mtls.calls_to("/chat/completions")[0].body["model_options"]["max_tokens"] == 512


async def test_seed_variables_drive_a_cloud_backend_end_to_end(
    monkeypatch: pytest.MonkeyPatch, gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    settings = from_env(
        monkeypatch,
        GIGACHAT_RUN_MODE="cloud",
        GIGACHAT_BASE_URL=gigachat_cloud.base_url,
        GIGACHAT_AUTH_URL=gigachat_cloud.auth_url,
        GIGACHAT_CREDENTIALS=gigachat_cloud.credentials,
        GIGACHAT_SCOPE="GIGACHAT_API_CORP",
        GIGACHAT_CA_BUNDLE_FILE=str(certs.ca_file),
    )
    gigachat_cloud.scope = "GIGACHAT_API_CORP"  # the peer only accepts this scope now
    async with started(build_backend(settings)) as backend:
        answer = await backend.chat(ask("corp"))
    assert (answer.backend, answer.text) == ("gigachat-cloud", "echo: corp")
    assert gigachat_cloud.calls_to("/oauth")[0].body == {"scope": "GIGACHAT_API_CORP"}
