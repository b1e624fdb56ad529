"""A minimal HTTP/1.1 keep-alive client on asyncio streams, cheap enough to share 2 cores with the service.

One `Connection` per virtual user. A request is: write the pre-built bytes, read the status line and
headers up to CRLFCRLF, read Content-Length bytes (chunked bodies are handled too, for robustness).
Only loopback targets are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class HTTPError(Exception):
    pass


def parse_loopback_url(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL; refuses anything that is not a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    host = parts.hostname or ""
    if host.lower() not in LOOPBACK_NAMES:
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"refusing a non-loopback target {host!r}: the bench only loads this machine"
            ) from None
    return host, parts.port or 80


def build_request(
    method: str,
    path: str,
    host_header: str,
    body: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Connection: keep-alive"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    if body is not None:
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + body if body else head


class Connection:
    __slots__ = ("host", "port", "reader", "requests", "writer")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; (status, body). Reconnects once if a kept-alive socket died."""
        for attempt in (0, 1):
            if self.writer is None:
                await self.connect()
            try:
                return await self._exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                await self.close()
                # A request that never got a byte back on a reused connection may be retried once.
                if attempt or self.requests == 0:
                    raise
                self.requests = 0
        raise AssertionError("unreachable")

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        # b"HTTP/1.1 202 Accepted\r\n..."
        try:
            status = int(head[9:12])
        except ValueError:
            raise HTTPError(f"bad status line: {head[:64]!r}") from None
        lower = head.lower()
        body = b""
        idx = lower.find(b"\r\ncontent-length:")
        if idx >= 0:
            end = lower.find(b"\r\n", idx + 17)
            length = int(lower[idx + 17 : end])
            if length:
                body = await reader.readexactly(length)
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._read_chunked(reader)
        elif status not in (204, 304) and not 100 <= status < 200:
            body = await reader.read()  # until close
            await self.close()
            return status, body
        if b"\r\nconnection: close" in lower:
            await self.close()
        return status, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                # trailers until an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
