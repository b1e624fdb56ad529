"""GigaChat backend, cloud (OAuth token from credentials) and mTLS (client certificate), on the async SDK.

The `gigachat` SDK already does what we need: async httpx calls, OAuth token exchange with refresh
before expiry (and one re-auth on a 401), and typed errors carrying the HTTP status and headers, so
Retry-After is readable. We give it one SSLContext we build and validate ourselves, so a missing
file, a wrong key password or a key that does not match its certificate stops start-up with a clear
message instead of failing on the first request. SDK retries stay off: the resilience layer owns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, Literal

import httpx
from gigachat import GigaChatAsyncClient, session_id_cvar
from gigachat import exceptions as sdk
from loguru import logger

from service.config import Settings
from service.errors import ConfigurationError
from service.llm.base import (
    AuthenticationFailed,
    BadRequest,
    ChatRequest,
    ChatResponse,
    ContentRejected,
    LLMConnectionError,
    LLMError,
    LLMTimeout,
    Overloaded,
)
from service.llm.gigachat_contracts import CONTRACTS, ApiVersion, Reply, chat_v1, chat_v2
from service.llm.support import (
    Redactor,
    certificate_refused_page,
    elapsed_ms,
    error_for_status,
    models_health,
    require_readable_file,
    snippet,
    tls_failure,
    usage_or_estimate,
    verified_tls_context,
)
from service.llm.tls_probe import CERTIFICATE_REFUSED, CertificateCheck
from service.retry_after import parse_retry_after

Mode = Literal["cloud", "mtls"]
HEALTH_TIMEOUT_SECONDS = 5.0
# GigaChat reports a moderated answer with this finish reason instead of an HTTP error.
BLOCKED_FINISH_REASON = "blacklist"


def build_ssl_context(settings: Settings, mode: Mode) -> ssl.SSLContext:
    """TLS for both the API and the OAuth endpoint; client certificate loaded in mTLS mode."""
    ca_setting, ca_file = "GIGACHAT_CA_BUNDLE_FILE", settings.gigachat_ca_bundle_file
    if mode == "mtls" and settings.gigachat_mtls_ca_bundle_file is not None:
        ca_setting, ca_file = "GIGACHAT_MTLS_CA_BUNDLE_FILE", settings.gigachat_mtls_ca_bundle_file
    context = verified_tls_context(
        ca_file,
        ca_setting,
        verify=settings.gigachat_verify_ssl_certs,
        verify_setting="GIGACHAT_VERIFY_SSL_CERTS",
    )
    if mode == "mtls":
        cert = require_readable_file(
            settings.gigachat_mtls_cert_file, "client certificate", "GIGACHAT_MTLS_CERT_FILE"
        )
        key = require_readable_file(settings.gigachat_mtls_key_file, "client key", "GIGACHAT_MTLS_KEY_FILE")
        secret = settings.gigachat_mtls_key_file_password
        # A callable, not None: for an encrypted key without a password OpenSSL would otherwise
        # prompt on the terminal and hang a headless worker.
        password: Any = secret.get_secret_value() if secret else (lambda: "")
        try:
            context.load_cert_chain(str(cert), str(key), password)
        except ssl.SSLError:
            raise ConfigurationError(
                f"cannot load client certificate {cert} with key {key}: the key password is wrong or "
                "missing (GIGACHAT_MTLS_KEY_FILE_PASSWORD), or the key does not match the certificate"
            ) from None
    return context


class GigaChatBackend:
    """One backend class for both GigaChat access modes; `mode` decides how it authenticates."""

    def __init__(self, settings: Settings, mode: Mode) -> None:
        self.name = f"gigachat-{mode}"
        self._settings = settings
        self._mode = mode
        self._model = settings.gigachat_model
        credentials = settings.gigachat_credentials
        self._credentials = credentials.get_secret_value() if credentials else None
        key_password = settings.gigachat_mtls_key_file_password
        self._redact = Redactor(
            [self._credentials, key_password.get_secret_value() if key_password else None]
        )
        self._client: GigaChatAsyncClient | None = None
        self._certificate: CertificateCheck | None = None
        self._startup_probe: asyncio.Task[None] | None = None
        # None until `auto` has seen which chat contract the server serves; then kept for the process.
        self._version: ApiVersion | None = (
            None if settings.gigachat_api_version == "auto" else settings.gigachat_api_version
        )

    async def start(self) -> None:
        if self._mode == "cloud" and not self._credentials:
            raise ConfigurationError("GIGACHAT_CREDENTIALS must be set for LLM_BACKEND=gigachat-cloud")
        context = build_ssl_context(self._settings, self._mode)
        s = self._settings
        # Empty strings (not None) for what this mode does not use: the SDK reads GIGACHAT_* variables
        # from the environment for every argument left None, which could e.g. make an mTLS client
        # also do OAuth, or swap our validated SSLContext for a file path.
        self._client = GigaChatAsyncClient(
            base_url=s.gigachat_base_url,
            auth_url=s.gigachat_auth_url,
            credentials=self._credentials if self._mode == "cloud" else "",
            scope=s.gigachat_scope,
            access_token="",
            user="",
            password="",
            model=self._model,
            timeout=s.llm_timeout_seconds,
            verify_ssl_certs=s.gigachat_verify_ssl_certs,
            ssl_context=context,
            ca_bundle_file="",
            cert_file="",
            key_file="",
            key_file_password="",
            max_retries=0,
        )
        self._certificate = CertificateCheck(
            s.gigachat_base_url,
            context,
            presents_certificate=self._mode == "mtls",
            timeout=HEALTH_TIMEOUT_SECONDS,
        )
        logger.info("LLM backend {} ready: base_url={} model={}", self.name, s.gigachat_base_url, self._model)
        if self._mode == "mtls":
            # Say at once if the server refuses our certificate, without delaying start-up (the
            # server may be down now and fine later; requests get the same verdict either way).
            self._startup_probe = asyncio.create_task(self._report_refusal(), name=f"{self.name}-tls-probe")

    async def _report_refusal(self) -> None:
        if refusal := await self._refusal():
            logger.error(
                "{}: {}; every request will fail with {} until the certificate is fixed",
                self.name,
                refusal,
                AuthenticationFailed.code,
            )

    async def close(self) -> None:
        if self._startup_probe is not None:
            self._startup_probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup_probe
            self._startup_probe = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _require_client(self) -> GigaChatAsyncClient:
        if self._client is None:
            raise RuntimeError(f"{self.name} backend used before start()")
        return self._client

    async def chat(self, request: ChatRequest) -> ChatResponse:
        client = self._require_client()
        started = time.perf_counter()
        # The SDK sends X-Session-ID from this context variable (its own mechanism for the header);
        # set for this call's task only, and put back after it.
        session = session_id_cvar.set(request.session_id) if request.session_id else None
        try:
            async with asyncio.timeout(request.timeout):
                reply = await self._complete(client, request)
        except Exception as exc:
            raise await self._classify(exc) from None
        finally:
            if session is not None:
                session_id_cvar.reset(session)
        if reply.text is None:
            raise Overloaded(f"{self.name} returned no answer")
        response = ChatResponse(
            text=reply.text,
            usage=usage_or_estimate(
                reply.prompt_tokens,
                reply.completion_tokens,
                request.prompt_text,
                reply.text,
                cached_tokens=reply.cached_tokens,
            ),
            model=reply.model or request.model or self._model,
            latency_ms=elapsed_ms(started),
            backend=self.name,
        )
        if reply.finish_reason == BLOCKED_FINISH_REASON:
            # Refused, but generated and billed: the error carries the usage, never the text.
            raise ContentRejected(f"{self.name} refused to answer (content policy)", response=response)
        return response

    async def _complete(self, client: GigaChatAsyncClient, request: ChatRequest) -> Reply:
        """One call on the configured contract; in `auto`, v2 first and v1 after a 404 on v2's path."""
        if self._version is not None:
            return await CONTRACTS[self._version](client, request, self._model)
        try:
            reply = await chat_v2(client, request, self._model)
        except sdk.NotFoundError as v2_missing:
            try:
                reply = await chat_v1(client, request, self._model)
            except sdk.NotFoundError:
                # v1 is missing too, so the 404 was about something else (a model, say): report v2's.
                raise v2_missing from None
            # Settled only by an answer: another error (a proxy's 502, say) proves nothing yet.
            self._settle("v1")
            return reply
        self._version = "v2"
        return reply

    def _settle(self, version: ApiVersion) -> None:
        if self._version != version:
            self._version = version
            logger.warning(
                "{}: {} answers 404 on the v2 chat path; using GigaChat API v1 (/chat/completions of "
                "GIGACHAT_BASE_URL) for the rest of this process. GIGACHAT_API_VERSION=v1 skips the probe",
                self.name,
                self._settings.gigachat_base_url,
            )

    async def health(self) -> dict[str, Any]:
        """Lists models: needs a token (cloud) or the certificate (mTLS) but spends no tokens."""
        report = await models_health(
            self.name, self._model, self._list_models, self._translate, HEALTH_TIMEOUT_SECONDS
        )
        if report.get("error") == LLMConnectionError.code and (refusal := await self._refusal()):
            report |= {"error": AuthenticationFailed.code, "detail": self._refused_message(refusal)}
        return report

    async def _list_models(self) -> list[str]:
        return [model.id_ for model in (await self._require_client().aget_models()).data]

    async def models(self) -> list[str]:
        try:
            return await self._list_models()
        except Exception as exc:
            raise await self._classify(exc) from exc

    def _translate(self, exc: Exception) -> LLMError:
        return self._redact.error(_translate(exc, self.name))

    async def _classify(self, exc: Exception) -> LLMError:
        """`_translate`, plus the question TLS 1.3 leaves open: was a connection failure in fact the
        server refusing our client certificate? (See service/llm/tls_probe.py.)"""
        error = self._translate(exc)
        if isinstance(error, LLMConnectionError) and (refusal := await self._refusal()):
            return AuthenticationFailed(self._refused_message(refusal))
        return error

    async def _refusal(self) -> str | None:
        return await self._certificate.refusal() if self._certificate is not None else None

    def _refused_message(self, refusal: str) -> str:
        return f"{self.name} TLS handshake failed: {refusal}"


def _translate(exc: Exception, name: str) -> LLMError:
    """Map SDK and transport exceptions to our typed errors. Messages never embed request headers;
    response bodies are quoted briefly (servers explain 4xx there) and redacted by the caller."""
    if isinstance(exc, sdk.ResponseError):
        status, detail = exc.status_code, snippet(exc.content)
        message = f"{name} answered HTTP {status}: {detail}".rstrip(": ")
        if certificate_refused_page(status, exc.content):
            return AuthenticationFailed(f"{name} TLS handshake failed: {CERTIFICATE_REFUSED} (HTTP {status})")
        retry_after = parse_retry_after(exc.headers.get("retry-after") if exc.headers else None)
        return error_for_status(status, message, retry_after) or BadRequest(message)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return LLMTimeout(f"{name} did not answer in time")
    if isinstance(exc, httpx.TransportError | ssl.SSLError | OSError):
        if reason := tls_failure(exc):
            return AuthenticationFailed(f"{name} TLS handshake failed: {reason}")
        return LLMConnectionError(f"{name} is unreachable: {type(exc).__name__}")
    if isinstance(exc, sdk.GigaChatException):
        return BadRequest(f"{name} rejected the request: {type(exc).__name__}")
    # E.g. an answer that does not fit the SDK's response model. Only the type is reported: the
    # exception's text may quote the payload.
    return LLMError(f"{name} call failed: {type(exc).__name__}")
