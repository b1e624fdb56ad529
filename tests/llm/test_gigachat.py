"""GigaChat backend against a local GigaChat-compatible HTTPS server: cloud OAuth, mTLS, error mapping."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.errors import ConfigurationError
from service.llm.base import (
    AuthenticationFailed,
    ContentRejected,
    LLMConnectionError,
    LLMTimeout,
    Overloaded,
    RateLimited,
)
from service.llm.gigachat import GigaChatBackend
from service.llm.registry import build_backend
from service.llm.support import snippet
from tests.llm.conftest import ask, cloud_settings, make_settings, mtls_settings, started
from tests.peers.certs import CertBundle
from tests.peers.gigachat_server import GigaChatPeer, gigachat_peer
from tests.peers.openai_server import OpenAIPeer

# The SDK renews a token once it is within this many seconds of expiry.
SDK_REFRESH_MARGIN_SECONDS = 60


def bearer_tokens(peer: GigaChatPeer) -> list[str]:
    return [call.headers["authorization"] for call in peer.calls_to("/chat/completions")]


async def test_cloud_exchanges_credentials_for_a_token_and_reuses_it(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        first = await backend.chat(ask("first"))
        second = await backend.chat(ask("second"))

    assert (first.text, second.text) == ("echo: first", "echo: second")
    assert first.backend == "gigachat-cloud" and first.model.startswith("GigaChat")
    assert not first.usage.estimated and first.usage.total_tokens > 0
    assert first.latency_ms > 0
    oauth = gigachat_cloud.calls_to("/oauth")
    assert len(oauth) == 1
    assert oauth[0].body == {"scope": "GIGACHAT_API_PERS"}
    assert oauth[0].headers["authorization"] == f"Basic {gigachat_cloud.credentials}"
    issued = next(iter(gigachat_cloud.tokens))
    assert bearer_tokens(gigachat_cloud) == [f"Bearer {issued}"] * 2
    # The SDK's primary chat contract, not the root compatibility shim (/api/v1/chat/completions).
    assert gigachat_cloud.calls_to("/api/v1/chat/completions") == []
    (sent, _) = (call.body for call in gigachat_cloud.calls_to("/api/v2/chat/completions"))
    assert sent["messages"] == [
        {"role": "system", "content": [{"text": "You are a test."}]},
        {"role": "user", "content": [{"text": "first"}]},
    ]
    assert sent["model"] == "GigaChat" and sent["model_options"] == {"temperature": 0.2, "max_tokens": 2048}
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (
        len("You are a test.first") // 4 + 1,
        len("echo: first") // 4 + 1,
    )


async def test_cloud_refreshes_the_token_before_it_expires(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    # Tokens usable for ~3 s before they enter the SDK's refresh margin.
    gigachat_cloud.token_lifetime_seconds = SDK_REFRESH_MARGIN_SECONDS + 3
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        await backend.chat(ask())
        await backend.chat(ask())
        assert len(gigachat_cloud.calls_to("/oauth")) == 1
        await asyncio.sleep(3.5)
        await backend.chat(ask())

    assert len(gigachat_cloud.calls_to("/oauth")) == 2
    tokens = bearer_tokens(gigachat_cloud)
    assert tokens[0] == tokens[1] != tokens[2]


async def test_cloud_reauthenticates_when_the_server_drops_the_token(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        await backend.chat(ask())
        gigachat_cloud.revoke_tokens()
        answer = await backend.chat(ask("after revoke"))

    assert answer.text == "echo: after revoke"
    assert len(gigachat_cloud.calls_to("/oauth")) == 2


async def test_cloud_wrong_credentials_fail_as_authentication(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    settings = cloud_settings(gigachat_cloud, certs).model_copy(
        update={
            "gigachat_credentials": make_settings(
                gigachat_credentials="d3Jvbmc6c2VjcmV0"
            ).gigachat_credentials
        }
    )
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        with pytest.raises(AuthenticationFailed) as caught:
            await backend.chat(ask())
    assert not caught.value.retryable
    assert "401" in caught.value.message
    assert gigachat_cloud.calls_to("/chat/completions") == []


async def test_cloud_needs_credentials(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    settings = cloud_settings(gigachat_cloud, certs).model_copy(update={"gigachat_credentials": None})
    with pytest.raises(ConfigurationError, match="GIGACHAT_CREDENTIALS"):
        await GigaChatBackend(settings, "cloud").start()


async def test_server_certificate_is_verified_by_default(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    # Without our test CA the peer's certificate is untrusted: a clear, non-retryable failure.
    settings = cloud_settings(gigachat_cloud, certs).model_copy(update={"gigachat_ca_bundle_file": None})
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        with pytest.raises(AuthenticationFailed, match="not trusted") as caught:
            await backend.chat(ask())
    assert not caught.value.retryable
    assert gigachat_cloud.calls == []


async def test_verification_can_be_switched_off(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    settings = cloud_settings(gigachat_cloud, certs).model_copy(
        update={"gigachat_ca_bundle_file": None, "gigachat_verify_ssl_certs": False}
    )
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        assert (await backend.chat(ask("insecure"))).text == "echo: insecure"


@pytest.mark.parametrize("encrypted_key", [False, True], ids=["plain-key", "password-protected-key"])
async def test_mtls_with_the_right_client_certificate(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, encrypted_key: bool
) -> None:
    key: dict[str, object] = {"gigachat_mtls_key_file": certs.client_key}
    if encrypted_key:
        key = {
            "gigachat_mtls_key_file": certs.client_key_encrypted,
            "gigachat_mtls_key_file_password": certs.key_password,
        }
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls, certs, **key), "mtls")) as backend:
        answer = await backend.chat(ask("via mtls"))
        health = await backend.health()

    assert answer.text == "echo: via mtls" and answer.backend == "gigachat-mtls"
    assert health["ok"] is True
    assert gigachat_mtls.calls_to("/oauth") == []  # the certificate is the credential
    assert "authorization" not in gigachat_mtls.calls_to("/chat/completions")[0].headers


async def test_mtls_rejects_a_certificate_from_another_ca(
    gigachat_mtls: GigaChatPeer, certs: CertBundle
) -> None:
    settings = mtls_settings(
        gigachat_mtls,
        certs,
        gigachat_mtls_cert_file=certs.foreign_client_cert,
        gigachat_mtls_key_file=certs.foreign_client_key,
    )
    async with started(GigaChatBackend(settings, "mtls")) as backend:
        with pytest.raises(AuthenticationFailed, match="rejected the client certificate") as caught:
            await backend.chat(ask())
        health = await backend.health()
    assert not caught.value.retryable
    assert health["ok"] is False and health["error"] == "llm_auth_failed"
    assert gigachat_mtls.calls == []


async def test_mtls_server_refuses_a_client_without_certificate(
    gigachat_mtls: GigaChatPeer, certs: CertBundle
) -> None:
    settings = cloud_settings(gigachat_mtls, certs)  # token mode: no client certificate at all
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        with pytest.raises(AuthenticationFailed, match="rejected the client certificate"):
            await backend.chat(ask())
    assert gigachat_mtls.calls == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"gigachat_mtls_cert_file": "/nonexistent/client.pem"}, "client certificate not found"),
        ({"gigachat_mtls_key_file": "/nonexistent/client.key"}, "client key not found"),
        ({"gigachat_mtls_cert_file": None}, "GIGACHAT_MTLS_CERT_FILE must be set"),
        ({"gigachat_mtls_ca_bundle_file": "/nonexistent/ca.pem"}, "CA bundle not found"),
        ({"gigachat_mtls_key_file": "/"}, "client key not found"),
        ("encrypted-without-password", "key password is wrong or missing"),
        ("encrypted-wrong-password", "key password is wrong or missing"),
        ("key-of-another-certificate", "does not match the certificate"),
    ],
)
async def test_mtls_start_fails_fast_on_unusable_files(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, override: dict[str, object] | str, message: str
) -> None:
    named: dict[str, dict[str, object]] = {
        "encrypted-without-password": {"gigachat_mtls_key_file": certs.client_key_encrypted},
        "encrypted-wrong-password": {
            "gigachat_mtls_key_file": certs.client_key_encrypted,
            "gigachat_mtls_key_file_password": "not-the-password",
        },
        "key-of-another-certificate": {"gigachat_mtls_key_file": certs.foreign_client_key},
    }
    values = named[override] if isinstance(override, str) else override
    backend = GigaChatBackend(mtls_settings(gigachat_mtls, certs, **values), "mtls")
    with pytest.raises(ConfigurationError, match=message):
        await backend.start()


async def test_rate_limit_carries_retry_after(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    gigachat_cloud.faults.rate_limited, gigachat_cloud.faults.retry_after = 1, "7"
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        with pytest.raises(RateLimited) as caught:
            await backend.chat(ask())
    assert caught.value.retryable and caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_overload(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, status: int
) -> None:
    gigachat_cloud.faults.server_errors, gigachat_cloud.faults.server_error_status = 1, status
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        with pytest.raises(Overloaded, match=str(status)) as caught:
            await backend.chat(ask())
        assert (await backend.chat(ask("recovered"))).text == "echo: recovered"
    assert caught.value.retryable


async def test_slow_answer_times_out(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    gigachat_cloud.faults.delay_seconds = 2.0
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        with pytest.raises(LLMTimeout) as caught:
            await backend.chat(ask(timeout=0.3))
    assert caught.value.retryable


async def test_moderated_answer_is_content_rejection(gigachat_cloud: GigaChatPeer, certs: CertBundle) -> None:
    gigachat_cloud.finish_reason = "blacklist"
    gigachat_cloud.reply_text = "I would rather not talk about that."
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        with pytest.raises(ContentRejected) as caught:
            await backend.chat(ask())
    assert not caught.value.retryable
    # The provider generated and billed the refused answer: its usage travels with the error.
    (billed,) = caught.value.billed
    assert not billed.usage.estimated
    assert (billed.usage.prompt_tokens, billed.usage.completion_tokens) == (
        len("You are a test.hello") // 4 + 1,
        len(gigachat_cloud.reply_text) // 4 + 1,
    )
    assert "rather not" not in caught.value.message


async def test_unreachable_server_is_a_connection_error(certs: CertBundle) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        gigachat_base_url=f"https://127.0.0.1:{port}/api/v1",
        gigachat_auth_url=f"https://127.0.0.1:{port}/api/v2/oauth",
        gigachat_credentials="dGVzdDp0ZXN0",
        gigachat_ca_bundle_file=certs.ca_file,
    )
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        with pytest.raises(LLMConnectionError) as caught:
            await backend.chat(ask())
        health = await backend.health()
    assert caught.value.retryable
    assert health == {
        "ok": False,
        "backend": "gigachat-cloud",
        "error": "llm_connection_error",
        "detail": health["detail"],
    }


async def test_health_lists_models_without_spending_tokens(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        before = time.monotonic()
        health = await backend.health()
    assert health["ok"] is True and health["model_available"] is True
    assert len(gigachat_cloud.calls_to("/models")) == 1
    assert gigachat_cloud.calls_to("/chat/completions") == []
    assert all(call.at >= before for call in gigachat_cloud.calls)


REFUSING_SERVERS: dict[str, dict[str, Any]] = {
    # TLS 1.3, alert sent but the close turns into a reset that usually overtakes it.
    "tls13-reset": {"linger_on_refusal": False},
    # uvicorn terminating TLS (any asyncio server): the handshake is dropped without an alert.
    "uvicorn-tls13": {"asyncio_tls": True},
    "uvicorn-tls12": {"asyncio_tls": True, "max_version": ssl.TLSVersion.TLSv1_2},
}


@pytest.fixture(params=sorted(REFUSING_SERVERS))
def refusing_mtls_peer(request: pytest.FixtureRequest, certs: CertBundle) -> Iterator[GigaChatPeer]:
    with gigachat_peer(certs, mtls=True, **REFUSING_SERVERS[request.param]) as peer:
        yield peer


async def test_a_refused_certificate_is_an_auth_failure_whatever_tls_does_to_the_alert(
    refusing_mtls_peer: GigaChatPeer, openai_upstream: OpenAIPeer, certs: CertBundle
) -> None:
    """TLS 1.3: the request goes out before the server checks the certificate; the server's close
    then usually arrives as a reset that swallows the alert (and asyncio servers send none at all).
    Still a final auth failure: never retried as a connection error, never answered by the fallback."""
    settings = mtls_settings(
        refusing_mtls_peer,
        certs,
        gigachat_mtls_cert_file=certs.foreign_client_cert,
        gigachat_mtls_key_file=certs.foreign_client_key,
        llm_fallback_backend="openai",
        openai_base_url=openai_upstream.base_url,
        openai_api_key=openai_upstream.api_key,
        llm_retry_base_seconds=0.01,
    )
    async with started(build_backend(settings)) as backend:
        outcomes = await asyncio.gather(
            *(backend.chat(ask(f"{i} " + "x" * 6000)) for i in range(10)), return_exceptions=True
        )
        health = await backend.health()
    assert all(isinstance(outcome, AuthenticationFailed) for outcome in outcomes), outcomes
    assert all("rejected the client certificate" in str(outcome) for outcome in outcomes)
    assert openai_upstream.calls_to("/chat/completions") == []  # no fallback for an auth failure
    assert refusing_mtls_peer.calls == []
    assert health["primary"]["error"] == "llm_auth_failed"

    # The same server accepts the right certificate: the probe must not call that a refusal.
    async with started(GigaChatBackend(mtls_settings(refusing_mtls_peer, certs), "mtls")) as backend:
        assert (await backend.chat(ask("accepted"))).text == "echo: accepted"
        assert await backend._refusal() is None  # the probe itself


async def test_a_refused_certificate_is_reported_right_after_start(
    certs: CertBundle, captured_logs: list[str]
) -> None:
    foreign = {
        "gigachat_mtls_cert_file": certs.foreign_client_cert,
        "gigachat_mtls_key_file": certs.foreign_client_key,
    }
    with gigachat_peer(certs, mtls=True, asyncio_tls=True) as peer:
        backend = GigaChatBackend(mtls_settings(peer, certs, **foreign), "mtls")
        async with started(backend):
            assert backend._startup_probe is not None  # the probe runs in the background
            async with asyncio.timeout(60):
                await backend._startup_probe
    (line,) = [line for line in captured_logs if "every request will fail" in line]
    assert line.startswith("ERROR") and "rejected the client certificate" in line


async def test_a_server_that_resets_every_connection_stays_a_connection_error(certs: CertBundle) -> None:
    # TCP accepted, then reset before TLS says anything, with no client certificate involved: a
    # network or server fault, retryable - the probe must not turn it into an auth failure.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def reset_everything() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

    thread = threading.Thread(target=reset_everything, daemon=True)
    thread.start()
    settings = make_settings(
        gigachat_base_url=f"https://127.0.0.1:{port}/api/v1",
        gigachat_auth_url=f"https://127.0.0.1:{port}/api/v2/oauth",
        gigachat_credentials="dGVzdDp0ZXN0",
        gigachat_ca_bundle_file=certs.ca_file,
    )
    try:
        async with started(GigaChatBackend(settings, "cloud")) as backend:
            with pytest.raises(LLMConnectionError) as caught:
                await backend.chat(ask())
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert caught.value.retryable


async def test_a_certificate_refused_nginx_style_is_an_auth_failure_without_html(
    gigachat_mtls_nginx: GigaChatPeer, certs: CertBundle
) -> None:
    # nginx completes the handshake with any certificate, then answers HTTP 400 with an HTML page.
    foreign = {
        "gigachat_mtls_cert_file": certs.foreign_client_cert,
        "gigachat_mtls_key_file": certs.foreign_client_key,
    }
    settings = mtls_settings(gigachat_mtls_nginx, certs, **foreign)
    async with started(GigaChatBackend(settings, "mtls")) as backend:
        with pytest.raises(AuthenticationFailed, match="rejected the client certificate") as caught:
            await backend.chat(ask())
        health = await backend.health()
    assert not caught.value.retryable
    assert "<" not in caught.value.message and "html" not in caught.value.message.lower()
    assert health["ok"] is False and health["error"] == "llm_auth_failed"
    assert "<" not in health["detail"]
    assert gigachat_mtls_nginx.calls == []
    # The right certificate passes the same server.
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls_nginx, certs), "mtls")) as backend:
        assert (await backend.chat(ask("through nginx"))).text == "echo: through nginx"


async def test_a_gateway_html_page_is_overload_without_html(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    gigachat_cloud.faults.server_errors, gigachat_cloud.faults.server_error_status = 1, 502
    gigachat_cloud.faults.error_html = (
        "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    )
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        with pytest.raises(Overloaded) as caught:
            await backend.chat(ask())
    assert caught.value.message == "gigachat-cloud answered HTTP 502: HTML error page (502 Bad Gateway)"


def test_html_error_pages_are_never_quoted() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1><script>x</script></body></html>"
    )
    assert snippet(page) == "HTML error page (502 Bad Gateway)"
    assert snippet(b"<!DOCTYPE html><html><body>oops</body></html>") == "HTML error page"
    assert snippet(b'{"message": "Invalid model"}') == '{"message": "Invalid model"}'
    assert snippet("Error code: 400 - <html><body>x</body></html>") == "Error code: 400 - HTML error page"
