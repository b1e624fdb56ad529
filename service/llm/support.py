"""Helpers shared by the HTTP backends: secret redaction, Retry-After, usage fallback, TLS diagnosis."""

from __future__ import annotations

import asyncio
import html
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from loguru import logger

from service.errors import ConfigurationError
from service.llm.base import (
    AuthenticationFailed,
    LLMError,
    LLMTimeout,
    Overloaded,
    RateLimited,
    Usage,
    estimate_tokens,
)

REDACTED = "***"
# Shorter "secrets" would redact ordinary words; real credentials are far longer.
_MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces known secret values in text that is about to leave the backend (errors, health)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._secrets = sorted(
            {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def error(self, error: LLMError) -> LLMError:
        """The same error with every secret removed from its message."""
        error.message = self(error.message)
        error.args = (error.message,)
        return error


def error_for_status(status: int, message: str, retry_after: float | None) -> LLMError | None:
    """The typed error an HTTP status means, the same for every backend; None for other 4xx, which
    each backend refines (content policy) or reports as a bad request."""
    if status in (401, 403):
        return AuthenticationFailed(message)
    if status == 429:
        return RateLimited(message, retry_after=retry_after)
    if status == 408:
        return LLMTimeout(message)
    if status >= 500:
        return Overloaded(message, retry_after=retry_after)
    return None


_HTML_TAG = re.compile(r"<(!doctype|html|head|body|title|center|h1|div|p)\b", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def is_html(body: bytes | str | None) -> bool:
    return bool(body) and _HTML_TAG.search(_text(body or "")) is not None


def snippet(body: bytes | str | None, limit: int = 200) -> str:
    """A short, single-line excerpt of an error body for messages (servers explain 400s there).

    An HTML error page (a proxy's, not the API's) is never copied: only its title, as plain text."""
    if not body:
        return ""
    text = _text(body)
    if markup := _HTML_TAG.search(text):
        title = _HTML_TITLE.search(text)
        plain = html.unescape(_TAG.sub("", title.group(1))).replace("<", "").replace(">", "") if title else ""
        page = f"HTML error page ({plain.strip()})" if plain.strip() else "HTML error page"
        text = f"{text[: markup.start()].strip()} {page}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def certificate_refused_page(status: int, body: bytes | str | None) -> bool:
    """True for a proxy's "400 Bad Request: the SSL certificate error" page: an auth failure that
    arrives as an HTTP answer instead of a TLS alert. nginx says "The SSL certificate error" or "No
    required SSL certificate was sent" once the handshake went through without a usable certificate."""
    return status == 400 and is_html(body) and "certificate" in _text(body or "").lower()


def usage_or_estimate(
    prompt_tokens: int | None,
    completion_tokens: int | None,
    prompt: str,
    completion: str,
    *,
    cached_tokens: int | None = None,
) -> Usage:
    """The server's usage when it reported one; otherwise our estimate, flagged as such."""
    if prompt_tokens is not None and completion_tokens is not None:
        return Usage(
            prompt_tokens,
            completion_tokens,
            prompt_tokens + completion_tokens,
            cached_tokens=cached_tokens or 0,
        )
    prompt_est, completion_est = estimate_tokens(prompt), estimate_tokens(completion)
    return Usage(prompt_est, completion_est, prompt_est + completion_est, estimated=True)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def tls_failure(exc: BaseException) -> str | None:
    """Why a TLS handshake failed, if `exc` (or anything it wraps) is a certificate problem."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).upper()
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return "the server's certificate is not trusted (check the CA bundle)"
        if any(
            marker in text
            for marker in ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN")
        ):
            return "the server rejected the client certificate"
        current = current.__cause__ or current.__context__
    return None


def verified_tls_context(
    ca_file: Path | None, ca_setting: str, *, verify: bool, verify_setting: str
) -> ssl.SSLContext:
    """Client TLS that verifies the server against `ca_file` (the system store when None), unless
    `verify` is off - said loudly. Per backend, unlike the process-wide SSL_CERT_FILE."""
    context = ssl.create_default_context()
    if not verify:
        logger.warning("TLS certificate verification is OFF ({}=false)", verify_setting)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        path = require_readable_file(ca_file, "CA bundle", ca_setting)
        try:
            context.load_verify_locations(cafile=str(path))
        except ssl.SSLError:
            raise ConfigurationError(f"CA bundle {path} contains no usable PEM certificates") from None
    return context


def require_readable_file(path: Path | None, what: str, setting: str) -> Path:
    """Fail start-up with a message naming the setting when a configured file cannot be read."""
    if path is None:
        raise ConfigurationError(f"{setting} must be set: {what} is required")
    if not path.is_file():
        raise ConfigurationError(f"{what} not found: {path} ({setting})")
    if not os.access(path, os.R_OK):
        raise ConfigurationError(f"{what} is not readable: {path} ({setting})")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigurationError(f"{what} cannot be read: {path} ({setting}): {exc.strerror}") from None
    return path


async def models_health(
    name: str,
    model: str,
    list_models: Callable[[], Awaitable[list[str]]],
    translate: Callable[[Exception], LLMError],
    timeout: float,
) -> dict[str, Any]:
    """Health by listing models: authenticated and routed like a completion, but spends no tokens."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            names = await list_models()
    except Exception as exc:
        error = translate(exc)
        return {"ok": False, "backend": name, "error": error.code, "detail": error.message}
    return {
        "ok": True,
        "backend": name,
        "model": model,
        "model_available": model in names,
        "latency_ms": elapsed_ms(started),
    }
