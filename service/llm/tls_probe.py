"""Tells a refused client certificate from a network failure, whatever TLS 1.3 did to the error.

With TLS 1.3 the client finishes its side of the handshake and sends the request before the server
has checked the client certificate. A server that refuses it sends an alert and closes; if the
request is still unread, the close becomes a TCP reset that usually overtakes the alert, so the
HTTP client sees only "connection reset" - indistinguishable from a network fault, hence retried
and (worse) handed to a fallback backend. Auth failures must be final and visible.

So after a connection-level failure the backend asks the server directly: a fresh TLS connection
with the same SSLContext sends one tiny request and reads what comes back. A TLS alert, or a close
before any HTTP answer, right after a completed handshake means the certificate was refused; a
proxy's "400 ... SSL certificate" page means the same; any other HTTP answer means the certificate
is fine and the original failure really was the network. Asyncio servers send no alert at all and
under TLS 1.2 drop the handshake itself: dropped twice while we present a certificate counts as a
refusal. One probe serves all concurrent callers and is reused for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from urllib.parse import urlsplit

from service.llm.support import certificate_refused_page, tls_failure

CERTIFICATE_REFUSED = "the server rejected the client certificate"
_READ_LIMIT = 16_384


class _Dropped:
    """The server accepted the TCP connection, then dropped the TLS handshake without a reason."""


_DROPPED = _Dropped()
# Without an alert a dropped handshake is ambiguous: ask twice before calling it a refusal.
_DROPPED_HANDSHAKES_FOR_REFUSAL = 2


async def probe_certificate(
    url: str, context: ssl.SSLContext, timeout: float, *, presents_certificate: bool = False
) -> str | None:
    """Why the server at `url` refuses our TLS client (a readable reason), or None when it answered
    normally or the probe could not tell (unreachable, timed out).

    `presents_certificate`: we send a client certificate. Asyncio-based servers (uvicorn and co.)
    refuse one by dropping the connection without an alert; under TLS 1.2 that happens inside the
    handshake. A server that accepts TCP and then drops our handshake every time is refusing us."""
    for _ in range(_DROPPED_HANDSHAKES_FOR_REFUSAL):
        verdict = await _probe_once(url, context, timeout)
        if verdict is not _DROPPED:
            return verdict if isinstance(verdict, str) else None
    return f"{CERTIFICATE_REFUSED} (it dropped the TLS handshake)" if presents_certificate else None


async def _probe_once(url: str, context: ssl.SSLContext, timeout: float) -> str | _Dropped | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 443
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return None  # unreachable: a network problem, not a refusal
    try:
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(context, server_hostname=host)
        except TimeoutError:
            return None
        except OSError as exc:  # ssl.SSLError is an OSError
            # TLS 1.2 and earlier: the alert arrives during the handshake - or nothing does.
            return tls_failure(exc) or _DROPPED
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("ascii", "replace"))
        try:
            async with asyncio.timeout(timeout):
                await writer.drain()
                answer = await reader.read(_READ_LIMIT)
        except TimeoutError:
            return None  # the server is slow, not refusing us
        except OSError as exc:
            # An alert, or a reset, right after a handshake that completed on our side.
            return tls_failure(exc) or CERTIFICATE_REFUSED
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    if not answer:
        return CERTIFICATE_REFUSED  # closed without a word after the handshake
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) >= 2 and status_line[0].startswith(b"HTTP/") and status_line[1].isdigit():
        return CERTIFICATE_REFUSED if certificate_refused_page(int(status_line[1]), body) else None
    return None


class CertificateCheck:
    """`probe_certificate` shared by concurrent callers and remembered for `max_age` seconds."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext,
        *,
        presents_certificate: bool,
        timeout: float = 5.0,
        max_age: float = 5.0,
    ) -> None:
        self._url = url
        self._context = context
        self._presents_certificate = presents_certificate
        self._timeout = timeout
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._verdict: str | None = None

    async def refusal(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._max_age:
                self._verdict = await probe_certificate(
                    self._url, self._context, self._timeout, presents_certificate=self._presents_certificate
                )
                self._checked_at = time.monotonic()
            return self._verdict
