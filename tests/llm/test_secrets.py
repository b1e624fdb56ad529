"""Credentials, API keys and key passwords never reach logs, error messages, results or health output.

The peers echo the credentials they receive in their 401 bodies, as careless servers do, so the
backends' own redaction is what keeps them out of our error messages.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from service.errors import ConfigurationError
from service.llm.base import LLMError
from service.llm.registry import build_backend
from tests.llm.conftest import ask, cloud_settings, mtls_settings, openai_settings, started
from tests.peers.certs import CertBundle
from tests.peers.gigachat_server import GigaChatPeer
from tests.peers.openai_server import OpenAIPeer

WRONG_CREDENTIALS = "d3Jvbmc6Y3JlZGVudGlhbHMtMTIzNDU2"
WRONG_API_KEY = "sk-wrong-secret-key-987654"
WRONG_PASSWORD = "not-the-key-password-42"


async def test_no_secret_leaks_anywhere(
    gigachat_cloud: GigaChatPeer,
    gigachat_mtls: GigaChatPeer,
    openai_upstream: OpenAIPeer,
    certs: CertBundle,
    captured_logs: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDKs and httpx log through the standard library
    secrets = [gigachat_cloud.credentials, openai_upstream.api_key, certs.key_password]
    secrets += [WRONG_CREDENTIALS, WRONG_API_KEY, WRONG_PASSWORD]
    outputs: list[Any] = []
    fast = {"llm_max_attempts": 2, "llm_retry_base_seconds": 0.01}

    good_cloud = cloud_settings(gigachat_cloud, certs, **fast)
    bad_cloud = cloud_settings(gigachat_cloud, certs, gigachat_credentials=WRONG_CREDENTIALS, **fast)
    good_mtls = mtls_settings(
        gigachat_mtls,
        certs,
        gigachat_mtls_key_file=certs.client_key_encrypted,
        gigachat_mtls_key_file_password=certs.key_password,
    )
    good_openai = openai_settings(openai_upstream, **fast)
    bad_openai = openai_settings(openai_upstream, openai_api_key=WRONG_API_KEY, **fast)
    # Primary failing retryably, fallback answering: exercises the retry and fallback logging.
    openai_upstream.faults.server_errors = 2
    with_fallback = openai_settings(
        openai_upstream,
        llm_fallback_backend="gigachat-cloud",
        gigachat_base_url=gigachat_cloud.base_url,
        gigachat_auth_url=gigachat_cloud.auth_url,
        gigachat_credentials=gigachat_cloud.credentials,
        gigachat_ca_bundle_file=certs.ca_file,
        **fast,
    )

    for settings in (with_fallback, good_cloud, bad_cloud, good_mtls, good_openai, bad_openai):
        async with started(build_backend(settings)) as backend:
            try:
                answer = await backend.chat(ask())
                outputs += [repr(answer)]
            except LLMError as error:
                outputs += [str(error), repr(error), error.args, error.message]
            outputs.append(await backend.health())

    wrong_password = mtls_settings(
        gigachat_mtls,
        certs,
        gigachat_mtls_key_file=certs.client_key_encrypted,
        gigachat_mtls_key_file_password=WRONG_PASSWORD,
    )
    with pytest.raises(ConfigurationError) as caught:
        await build_backend(wrong_password).start()
    outputs += [str(caught.value), repr(caught.value)]

    # The scenarios really ran: answers, failures, fallback and health all produced output.
    assert any("echo: hello" in str(output) for output in outputs)
    assert any("llm_auth_failed" in str(output) or "401" in str(output) for output in outputs)
    assert any("fallback" in line for line in captured_logs)
    # The peers did see the secrets (so they were really sent) ...
    assert any(WRONG_API_KEY in str(call.headers) for call in openai_upstream.calls)
    # ... but nothing we produced contains one.
    produced = "\n".join([*captured_logs, *(r.getMessage() for r in caplog.records), *map(str, outputs)])
    for secret in secrets:
        assert secret not in produced
