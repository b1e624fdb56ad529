"""The SSRF guard for user-supplied webhook URLs.

A target must be http(s) and every address its host resolves to must be public: loopback, private,
link-local (cloud metadata at 169.254.169.254 among them), multicast, reserved and unspecified
addresses are refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set (on-premises receivers); even then
link-local, multicast and unspecified addresses stay refused. The check runs when an endpoint is
registered and again at each delivery, and the delivery connects to the very address that was
checked (DNS rebinding cannot swap it in between). A URL that does not parse is refused the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeTarget(Exception):
    pass


@dataclass(frozen=True)
class SafeTarget:
    url: str  # the original URL
    host: str  # the TLS server name
    host_header: str  # host[:port] as in the URL
    address: str  # the checked IP address to connect to
    connect_url: str  # the URL with the host replaced by that address


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a translator
# (NAT64, RFC 6052) or the kernel (deprecated IPv4-compatible ::a.b.c.d): `is_global` calls them
# public whatever IPv4 address they wrap, 64:ff9b::7f00:1 (127.0.0.1) included.
_IPV4_IN_LAST_32_BITS = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo client, NAT64, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _IPV4_IN_LAST_32_BITS) and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not _is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def _is_reachable_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """With private targets allowed: still never link-local (the cloud metadata service lives at
    169.254.169.254 and fd00:ec2::254's link-local kin), multicast or unspecified addresses."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not _is_reachable_private(embedded):
            return False
    return not (address.is_link_local or address.is_multicast or address.is_unspecified)


def check_url_shape(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number, a broken [IPv6] literal
        raise UnsafeTarget(f"the URL is not valid ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in the URL are not accepted")
    return parts.hostname, port


async def resolve_safe(url: str, *, allow_private: bool) -> SafeTarget:
    host, port = check_url_shape(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        raise UnsafeTarget(f"the host {host} does not resolve") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(f"the host {host} does not resolve")
    allowed = _is_reachable_private if allow_private else _is_public
    if not all(allowed(address) for address in addresses):
        # Which address stays unsaid: the caller must not map the internal network through us.
        raise UnsafeTarget(f"the host {host} resolves to a non-public address")
    address = str(addresses[0])
    netloc = f"[{address}]" if ":" in address else address
    parts = urlsplit(url)
    connect_url = parts._replace(netloc=f"{netloc}:{port}").geturl()
    return SafeTarget(url, host, parts.netloc, address, connect_url)
