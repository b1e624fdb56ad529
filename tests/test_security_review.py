"""Holes found by the security review, each with the test that would have caught it."""

from __future__ import annotations

import pytest

from service.webhooks.ssrf import UnsafeTarget, resolve_safe


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of the cloud metadata address
        "http://[::7f00:1]/hook",  # IPv4-compatible 127.0.0.1
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
        "http://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped metadata address
    ],
)
async def test_ipv6_forms_of_internal_ipv4_addresses_are_refused(url: str) -> None:
    # Python's is_global calls these public; the address they wrap is what a translator reaches.
    with pytest.raises(UnsafeTarget, match="non-public"):
        await resolve_safe(url, allow_private=False)


async def test_ipv6_forms_of_public_ipv4_addresses_stay_allowed() -> None:
    for url in ("http://[64:ff9b::808:808]/hook", "http://[2002:808:808::]/hook"):
        target = await resolve_safe(url, allow_private=False)
        assert target.address.startswith(("64:ff9b::", "2002:"))


async def test_a_refused_target_does_not_say_which_internal_address_it_resolves_to() -> None:
    # "localhost" resolves on every machine; the answer must not map names to internal addresses.
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_safe("http://localhost:8080/hook", allow_private=False)
    message = str(refused.value)
    assert "non-public" in message and "127.0.0.1" not in message and "::1" not in message
