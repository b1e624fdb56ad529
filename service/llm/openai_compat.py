"""OpenAI-compatible backend (OpenAI, OpenRouter, vLLM, Ollama, LiteLLM) on the official async SDK.

Named `openai_compat` so it can never shadow the `openai` package. SDK retries are disabled
(`max_retries=0`): the resilience layer decides when and how often to retry.
"""

from __future__ import annotations

import time
from typing import Any

import openai
from loguru import logger

from service.config import Settings
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
from service.llm.support import (
    Redactor,
    certificate_refused_page,
    elapsed_ms,
    error_for_status,
    models_health,
    snippet,
    tls_failure,
    usage_or_estimate,
    verified_tls_context,
)
from service.llm.tls_probe import CERTIFICATE_REFUSED
from service.retry_after import parse_retry_after

HEALTH_TIMEOUT_SECONDS = 5.0
# Local servers (vLLM, Ollama) accept any key, but the SDK insists on one being present.
PLACEHOLDER_API_KEY = "not-needed"
CONTENT_POLICY_CODES = {"content_filter", "content_policy_violation"}


class OpenAIBackend:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model = settings.openai_model
        key = settings.openai_api_key
        self._api_key = key.get_secret_value() if key else None
        self._redact = Redactor([self._api_key])
        self._client: openai.AsyncOpenAI | None = None

    async def start(self) -> None:
        s = self._settings
        if not self._api_key:
            logger.warning("OPENAI_API_KEY is not set; fine for local servers, hosted APIs will answer 401")
        # Our own trust store for this backend only (OPENAI_CA_BUNDLE_FILE), e.g. a private CA in
        # front of vLLM; the process-wide SSL_CERT_FILE would also replace GigaChat's.
        context = verified_tls_context(
            s.openai_ca_bundle_file,
            "OPENAI_CA_BUNDLE_FILE",
            verify=s.openai_verify_ssl_certs,
            verify_setting="OPENAI_VERIFY_SSL_CERTS",
        )
        self._client = openai.AsyncOpenAI(
            http_client=openai.DefaultAsyncHttpxClient(verify=context),
            base_url=s.openai_base_url,
            api_key=self._api_key or PLACEHOLDER_API_KEY,
            organization=s.openai_organization,
            default_headers=s.openai_extra_headers or None,
            timeout=s.llm_timeout_seconds,
            max_retries=0,
        )
        logger.info("LLM backend openai ready: base_url={} model={}", s.openai_base_url, self._model)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _require_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            raise RuntimeError("openai backend used before start()")
        return self._client

    async def chat(self, request: ChatRequest) -> ChatResponse:
        client = self._require_client()
        started = time.perf_counter()
        try:
            completion = await client.chat.completions.create(
                model=request.model or self._model,
                messages=[
                    {"role": message.role, "content": message.content}  # type: ignore[misc]
                    for message in request.conversation()
                ],
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                timeout=request.timeout,
            )
        except Exception as exc:
            raise self._translate(exc) from None
        if not completion.choices:
            raise Overloaded("openai returned no choices")
        choice = completion.choices[0]
        text = choice.message.content or ""
        usage = completion.usage
        response = ChatResponse(
            text=text,
            usage=usage_or_estimate(
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
                request.prompt_text,
                text,
            ),
            model=completion.model or request.model or self._model,
            latency_ms=elapsed_ms(started),
            backend=self.name,
        )
        if choice.finish_reason == "content_filter":
            # Refused, but generated and billed: the error carries the usage, never the text.
            raise ContentRejected("openai refused to answer (content filter)", response=response)
        return response

    async def health(self) -> dict[str, Any]:
        """Lists models: authenticated and routed like a completion, but free."""
        return await models_health(
            self.name, self._model, self._list_models, self._translate, HEALTH_TIMEOUT_SECONDS
        )

    async def _list_models(self) -> list[str]:
        return [model.id for model in (await self._require_client().models.list()).data]

    async def models(self) -> list[str]:
        try:
            return await self._list_models()
        except Exception as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> LLMError:
        return self._redact.error(_translate(exc))


def _translate(exc: Exception) -> LLMError:
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"openai answered HTTP {status}: {snippet(exc.message)}"
        if certificate_refused_page(status, exc.response.text):
            return AuthenticationFailed(f"openai TLS handshake failed: {CERTIFICATE_REFUSED} (HTTP {status})")
        headers = exc.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and (millis := headers.get("retry-after-ms")):
            retry_after = (parse_retry_after(millis) or 0.0) / 1000
        if mapped := error_for_status(status, message, retry_after):
            return mapped
        return ContentRejected(message) if exc.code in CONTENT_POLICY_CODES else BadRequest(message)
    # APITimeoutError subclasses APIConnectionError: test it first.
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return LLMTimeout("openai did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        if reason := tls_failure(exc):
            return AuthenticationFailed(f"openai TLS handshake failed: {reason}")
        return LLMConnectionError(f"openai is unreachable: {snippet(str(exc))}")
    if isinstance(exc, openai.APIResponseValidationError):
        return Overloaded("openai returned a malformed answer")
    if isinstance(exc, openai.OpenAIError):
        return BadRequest(f"openai rejected the request: {type(exc).__name__}")
    return LLMError(f"openai call failed: {type(exc).__name__}")
