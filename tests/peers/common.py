"""What every fake LLM peer shares: a uvicorn server on a background thread, call recording, fault knobs.

Timestamps are `time.monotonic()` taken by the server when a request arrives, so tests can assert on
what the peer *saw* (e.g. request spacing) rather than on how fast our client code ran.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from tests.peers.tls_front import server_context, tls_front


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: Any  # parsed JSON, form dict, or None


@dataclass
class Faults:
    """Knobs a test turns to make the next requests fail or slow down. Counters count down per request."""

    rate_limited: int = 0  # answer this many requests with 429
    retry_after: str | None = None  # Retry-After header sent with the injected 429s and 5xx
    headers: dict[str, str] = field(default_factory=dict)  # any other headers sent with them
    server_errors: int = 0  # then answer this many with server_error_status
    server_error_status: int = 500
    delay_seconds: float = 0.0  # sleep before answering (every request while set)
    error_html: str | None = None  # set: the injected errors carry this HTML page, as a proxy's would


@dataclass
class PeerState:
    faults: Faults = field(default_factory=Faults)
    calls: list[RecordedCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # calls being answered right now
    max_in_flight: int = 0  # the most calls the peer was answering at once since the last reset

    def record(self, request: Request, body: Any) -> None:
        call = RecordedCall(request.method, request.url.path, time.monotonic(), dict(request.headers), body)
        with self.lock:
            self.calls.append(call)

    def calls_to(self, path_suffix: str) -> list[RecordedCall]:
        with self.lock:
            return [call for call in self.calls if call.path.endswith(path_suffix)]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.faults = Faults()
            self.in_flight = self.max_in_flight = 0

    def take_fault(self) -> Response | None:
        """The injected failure for this request, if any (decrements the matching counter)."""
        with self.lock:
            faults = self.faults
            headers = dict(faults.headers)
            if faults.retry_after is not None:
                headers["Retry-After"] = faults.retry_after
            if faults.rate_limited > 0:
                faults.rate_limited -= 1
                status, code, message = 429, "rate_limited", "Too many requests"
            elif faults.server_errors > 0:
                faults.server_errors -= 1
                status, code, message = faults.server_error_status, "server_error", "Internal error"
            else:
                return None
            if faults.error_html is not None:
                return HTMLResponse(faults.error_html, status_code=status, headers=headers)
            return error_response(status, code, message, headers)

    async def maybe_delay(self) -> None:
        """Sleep `delay_seconds` (if set), counting the calls that overlap meanwhile."""
        if not self.faults.delay_seconds:
            return
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.faults.delay_seconds)
        finally:
            with self.lock:
                self.in_flight -= 1


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # Both GigaChat and OpenAI answer errors with a JSON body; OpenAI nests it under "error".
    body = {"status": status, "message": message, "error": {"message": message, "type": code, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    return await request.json() if raw else None


@dataclass(frozen=True)
class TLSConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set: mutual TLS, a client certificate from this CA is required
    # False: a refused handshake is closed at once, so the client's unread request turns the close
    # into a TCP reset that usually overtakes the TLS alert (what many real servers do under TLS 1.3).
    linger_on_refusal: bool = True
    # Set: refuse certificates nginx-style - complete the handshake with any certificate from
    # client_ca_file (or none), then answer HTTP 400 with an HTML page unless it was issued by this CA.
    certificate_page_unless_issuer: str | None = None
    # True: uvicorn terminates TLS itself, like any asyncio server: a refused handshake is dropped
    # without a TLS alert (the client sees a reset or EOF, under TLS 1.2 during the handshake).
    asyncio_tls: bool = False
    max_version: ssl.TLSVersion | None = None  # e.g. TLSv1_2 to pin the older protocol


@contextmanager
def serve(app: Starlette, tls: TLSConfig | None = None) -> Iterator[str]:
    """Run `app` on a free loopback port in a background thread (behind a TLS front if `tls`);
    yield its origin URL."""
    context = None
    if tls is not None:
        optional = tls.certificate_page_unless_issuer is not None
        context = server_context(tls.cert_file, tls.key_file, tls.client_ca_file, optional=optional)
        if tls.max_version is not None:
            context.maximum_version = tls.max_version
    with _uvicorn_thread(app, context if tls is not None and tls.asyncio_tls else None) as port:
        if tls is None or context is None:
            yield f"http://127.0.0.1:{port}"
            return
        if tls.asyncio_tls:
            yield f"https://127.0.0.1:{port}"
            return
        with tls_front(
            context,
            port,
            linger_on_refusal=tls.linger_on_refusal,
            certificate_page_unless_issuer=tls.certificate_page_unless_issuer,
        ) as tls_port:
            yield f"https://127.0.0.1:{tls_port}"


@contextmanager
def _uvicorn_thread(app: Starlette, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", loop="asyncio", http="h11", access_log=False
    )
    if ssl_context is not None:
        config.load()
        config.ssl = ssl_context  # ours rather than one built from files: TLS version, client CA
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="llm-peer")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test peer did not start")
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
