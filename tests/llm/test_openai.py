"""OpenAI-compatible backend against a local server speaking /v1/chat/completions and /v1/models."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.llm.base import AuthenticationFailed, ContentRejected, LLMTimeout, Overloaded, RateLimited
from service.llm.openai_compat import OpenAIBackend
from tests.llm.conftest import ask, openai_settings, started
from tests.peers.certs import CertBundle
from tests.peers.openai_server import OpenAIPeer


async def test_completion_with_reported_usage(openai_upstream: OpenAIPeer) -> None:
    settings = openai_settings(
        openai_upstream,
        openai_model="llama-3-8b",
        openai_organization="org-gigaoffice",
        openai_extra_headers={"HTTP-Referer": "https://gigaoffice.example"},
    )
    async with started(OpenAIBackend(settings)) as backend:
        answer = await backend.chat(ask("sum A1:A3", temperature=0.0, max_tokens=99))

    assert answer.text == "echo: sum A1:A3"
    assert (answer.backend, answer.model) == ("openai", "llama-3-8b")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        11,
        7,
        18,
    )
    assert not answer.usage.estimated
    (call,) = openai_upstream.calls_to("/chat/completions")
    assert call.body["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "sum A1:A3"},
    ]
    assert (call.body["temperature"], call.body["max_tokens"]) == (0.0, 99)
    assert call.headers["openai-organization"] == "org-gigaoffice"
    assert call.headers["http-referer"] == "https://gigaoffice.example"


async def test_usage_is_estimated_when_the_server_reports_none(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.include_usage = False
    openai_upstream.reply_text = "x" * 40
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        answer = await backend.chat(ask("y" * 100))

    assert answer.usage.estimated
    assert answer.usage.completion_tokens == 10  # 40 characters at ~4 per token
    assert answer.usage.prompt_tokens == (len("You are a test.") + 100 + 3) // 4
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


async def test_wrong_api_key_is_an_authentication_failure(openai_upstream: OpenAIPeer) -> None:
    settings = openai_settings(openai_upstream, openai_api_key="sk-wrong-key-123456")
    async with started(OpenAIBackend(settings)) as backend:
        with pytest.raises(AuthenticationFailed, match="401") as caught:
            await backend.chat(ask())
        health = await backend.health()
    assert not caught.value.retryable
    assert health["ok"] is False and health["error"] == "llm_auth_failed"


@pytest.mark.parametrize(
    ("header", "value", "expected"), [("Retry-After", "3", 3.0), ("retry-after-ms", "250", 0.25)]
)
async def test_rate_limit_carries_retry_after(
    openai_upstream: OpenAIPeer, header: str, value: str, expected: float
) -> None:
    openai_upstream.faults.rate_limited, openai_upstream.faults.headers = 1, {header: value}
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        with pytest.raises(RateLimited) as caught:
            await backend.chat(ask())
    assert caught.value.retryable and caught.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_overload(openai_upstream: OpenAIPeer, status: int) -> None:
    openai_upstream.faults.server_errors, openai_upstream.faults.server_error_status = 1, status
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        with pytest.raises(Overloaded, match=str(status)) as caught:
            await backend.chat(ask())
        assert (await backend.chat(ask("again"))).text == "echo: again"
    assert caught.value.retryable
    assert len(openai_upstream.calls_to("/chat/completions")) == 2  # the SDK itself did not retry


async def test_slow_answer_times_out(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.faults.delay_seconds = 2.0
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        with pytest.raises(LLMTimeout):
            await backend.chat(ask(timeout=0.3))


async def test_content_filter_is_a_rejection(openai_upstream: OpenAIPeer) -> None:
    openai_upstream.finish_reason = "content_filter"
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        with pytest.raises(ContentRejected) as caught:
            await backend.chat(ask())
    # Billed all the same: the usage the server reported travels with the error.
    (billed,) = caught.value.billed
    assert (billed.usage.total_tokens, billed.usage.estimated) == (18, False)


async def test_health_lists_models_without_completions(openai_upstream: OpenAIPeer) -> None:
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        health = await backend.health()
    assert health["ok"] is True and health["model_available"] is True
    assert len(openai_upstream.calls_to("/models")) == 1
    assert openai_upstream.calls_to("/chat/completions") == []


async def test_a_private_ca_is_trusted_through_its_own_setting(
    openai_tls: OpenAIPeer, certs: CertBundle
) -> None:
    assert openai_tls.base_url.startswith("https://")
    trusted = openai_settings(openai_tls, openai_ca_bundle_file=certs.ca_file)
    async with started(OpenAIBackend(trusted)) as backend:
        assert (await backend.chat(ask("over tls"))).text == "echo: over tls"

    # Without it the server is not trusted: a clear, final failure (not a retried connection error).
    async with started(OpenAIBackend(openai_settings(openai_tls))) as backend:
        with pytest.raises(AuthenticationFailed, match="not trusted") as caught:
            await backend.chat(ask())
        health = await backend.health()
    assert not caught.value.retryable
    assert health["ok"] is False and health["error"] == "llm_auth_failed"
    assert len(openai_tls.calls_to("/chat/completions")) == 1


async def test_verification_can_be_switched_off_for_the_openai_backend(
    openai_tls: OpenAIPeer, captured_logs: list[str]
) -> None:
    async with started(OpenAIBackend(openai_settings(openai_tls, openai_verify_ssl_certs=False))) as backend:
        assert (await backend.chat(ask("insecure"))).text == "echo: insecure"
    assert any("OPENAI_VERIFY_SSL_CERTS=false" in line for line in captured_logs)


async def test_an_unusable_ca_bundle_stops_start(openai_tls: OpenAIPeer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_CA_BUNDLE_FILE"):
        await OpenAIBackend(openai_settings(openai_tls, openai_ca_bundle_file=tmp_path / "none.pem")).start()
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="no usable PEM"):
        await OpenAIBackend(openai_settings(openai_tls, openai_ca_bundle_file=empty)).start()


NGINX_CERTIFICATE_PAGE = (
    "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.mark.parametrize(
    ("status", "page", "error", "code"),
    [
        (400, NGINX_CERTIFICATE_PAGE, AuthenticationFailed, "llm_auth_failed"),
        (502, GATEWAY_PAGE, Overloaded, "llm_unavailable"),
    ],
    ids=["certificate-page", "gateway-page"],
)
async def test_a_proxys_html_page_is_classified_and_never_quoted(
    openai_upstream: OpenAIPeer, status: int, page: str, error: type[Exception], code: str
) -> None:
    openai_upstream.faults.server_errors, openai_upstream.faults.server_error_status = 1, status
    openai_upstream.faults.error_html = page
    async with started(OpenAIBackend(openai_settings(openai_upstream))) as backend:
        with pytest.raises(error) as caught:
            await backend.chat(ask())
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert "<" not in str(caught.value) and "nginx" not in str(caught.value)
