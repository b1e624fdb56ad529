"""A TLS terminator in front of a plain HTTP test app, like nginx in front of the real GigaChat API.

Why not uvicorn's own TLS: asyncio servers drop a failed handshake without sending the TLS alert,
so a client with a rejected certificate only sees "connection reset". Real servers send the alert
("unknown CA", "certificate required") and our backend turns it into a clear error; blocking
stdlib sockets send it too, so this front behaves like production.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# nginx's answer, after a completed handshake, to a client certificate it does not accept.
_CERTIFICATE_PAGE = (
    b"<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n<center>The SSL certificate error</center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
CERTIFICATE_PAGE_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
    + f"Content-Length: {len(_CERTIFICATE_PAGE)}\r\nConnection: close\r\n\r\n".encode()
    + _CERTIFICATE_PAGE
)


def server_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None, *, optional: bool = False
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca_file))
    return context


def _issuer(tls: ssl.SSLSocket) -> str | None:
    peer = tls.getpeercert() or {}
    for rdn in peer.get("issuer", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _pipe(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes. TLS may buffer decrypted bytes: check pending()."""
    while True:
        ready = [client] if client.pending() else select.select([client, upstream], [], [], 30)[0]
        if not ready:
            return
        for source in ready:
            data = source.recv(65536)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


def _linger(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(1.0)
        while connection.recv(65536):
            pass


def _handle(
    connection: socket.socket,
    context: ssl.SSLContext,
    upstream_port: int,
    linger_on_refusal: bool,
    certificate_page_unless_issuer: str | None,
) -> None:
    # The handshake runs separately from wrapping: a failed wrap_socket() closes the socket at once.
    with context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False) as tls:
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            # OpenSSL has sent the alert. A graceful close (like nginx's lingering close) lets the
            # client read it; closing with the client's request still unread sends a TCP reset that
            # can overtake the alert, so the client sees only "connection reset" (many servers do).
            if linger_on_refusal:
                _linger(tls)
            return
        if certificate_page_unless_issuer is not None and _issuer(tls) != certificate_page_unless_issuer:
            with suppress(OSError):
                tls.recv(65536)  # the request, which nginx reads before answering
                tls.sendall(CERTIFICATE_PAGE_RESPONSE)
                _linger(tls)
            return
        with socket.create_connection(("127.0.0.1", upstream_port)) as upstream, suppress(OSError):
            _pipe(tls, upstream)


@contextmanager
def tls_front(
    context: ssl.SSLContext,
    upstream_port: int,
    *,
    linger_on_refusal: bool = True,
    certificate_page_unless_issuer: str | None = None,
) -> Iterator[int]:
    """Listen on a free loopback port, terminate TLS, forward to `upstream_port`; yield the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def accept_loop() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(30)
            threading.Thread(
                target=_handle,
                args=(connection, context, upstream_port, linger_on_refusal, certificate_page_unless_issuer),
                daemon=True,
            ).start()

    acceptor = threading.Thread(target=accept_loop, daemon=True, name="tls-front")
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        acceptor.join(timeout=5)
        listener.close()
