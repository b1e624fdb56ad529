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
is fine and the original failure really was the network. One probe serves all concurrent callers
and is reused for a few seconds.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

from service.llm.support import certificate_refused_page, tls_failure

CERTIFICATE_REFUSED = "the server rejected the client certificate"
_READ_LIMIT = 16_384


async def probe_certificate(url: str, context: ssl.SSLContext, timeout: float) -> str | None:
    """Why the server at `url` refuses our TLS client (a readable reason), or None when it answered
    normally or the probe could not tell (unreachable, timed out)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 443
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        return tls_failure(exc)  # TLS 1.2 and earlier: the alert arrives during the handshake
    try:
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("ascii", "replace"))
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
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass
    if not answer:
        return CERTIFICATE_REFUSED  # closed without a word after the handshake
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) >= 2 and status_line[0].startswith(b"HTTP/") and status_line[1].isdigit():
        return CERTIFICATE_REFUSED if certificate_refused_page(int(status_line[1]), body) else None
    return None


class CertificateCheck:
    """`probe_certificate` shared by concurrent callers and remembered for `max_age` seconds."""

    def __init__(self, url: str, context: ssl.SSLContext, *, timeout: float = 5.0, max_age: float = 5.0):
        self._url = url
        self._context = context
        self._timeout = timeout
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._verdict: str | None = None

    async def refusal(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._max_age:
                self._verdict = await probe_certificate(self._url, self._context, self._timeout)
                self._checked_at = time.monotonic()
            return self._verdict
