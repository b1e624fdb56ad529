"""Pytest fixtures for the LLM peers. Import them into a conftest: `from tests.peers.fixtures import *`.

Servers start once per session; the function-scoped fixtures hand each test a peer with its knobs
and recorded calls reset, so tests cannot leak faults into each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.certs import CertBundle, generate_certs
from tests.peers.gigachat_server import GigaChatPeer, gigachat_peer
from tests.peers.openai_server import OpenAIPeer, openai_peer

__all__ = [
    "certs",
    "gigachat_cloud",
    "gigachat_cloud_server",
    "gigachat_mtls",
    "gigachat_mtls_nginx",
    "gigachat_mtls_nginx_server",
    "gigachat_mtls_server",
    "openai_server",
    "openai_tls",
    "openai_tls_server",
    "openai_upstream",
]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    return generate_certs(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="session")
def gigachat_cloud_server(certs: CertBundle) -> Iterator[GigaChatPeer]:
    with gigachat_peer(certs) as peer:
        yield peer


@pytest.fixture(scope="session")
def gigachat_mtls_server(certs: CertBundle) -> Iterator[GigaChatPeer]:
    with gigachat_peer(certs, mtls=True) as peer:
        yield peer


@pytest.fixture(scope="session")
def gigachat_mtls_nginx_server(certs: CertBundle) -> Iterator[GigaChatPeer]:
    """mTLS peer that refuses a foreign certificate nginx-style: HTTP 400 with an HTML page."""
    with gigachat_peer(certs, mtls=True, nginx_style=True) as peer:
        yield peer


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIPeer]:
    with openai_peer() as peer:
        yield peer


@pytest.fixture(scope="session")
def openai_tls_server(certs: CertBundle) -> Iterator[OpenAIPeer]:
    with openai_peer(certs) as peer:
        yield peer


@pytest.fixture
def openai_tls(openai_tls_server: OpenAIPeer) -> OpenAIPeer:
    openai_tls_server.reset()
    return openai_tls_server


@pytest.fixture
def gigachat_cloud(gigachat_cloud_server: GigaChatPeer) -> GigaChatPeer:
    gigachat_cloud_server.reset()
    return gigachat_cloud_server


@pytest.fixture
def gigachat_mtls(gigachat_mtls_server: GigaChatPeer) -> GigaChatPeer:
    gigachat_mtls_server.reset()
    return gigachat_mtls_server


@pytest.fixture
def gigachat_mtls_nginx(gigachat_mtls_nginx_server: GigaChatPeer) -> GigaChatPeer:
    gigachat_mtls_nginx_server.reset()
    return gigachat_mtls_nginx_server


@pytest.fixture
def openai_upstream(openai_server: OpenAIPeer) -> OpenAIPeer:
    openai_server.reset()
    return openai_server


# Settings values that point each backend at its local peer (shared by the LLM and end-to-end tests).
def cloud_values(peer: GigaChatPeer, certs: CertBundle) -> dict[str, Any]:
    return {
        "llm_backend": "gigachat-cloud",
        "gigachat_base_url": peer.base_url,
        "gigachat_auth_url": peer.auth_url,
        "gigachat_credentials": peer.credentials,
        "gigachat_ca_bundle_file": certs.ca_file,
    }


def mtls_values(peer: GigaChatPeer, certs: CertBundle) -> dict[str, Any]:
    return {
        "llm_backend": "gigachat-mtls",
        "gigachat_base_url": peer.base_url,
        "gigachat_auth_url": peer.auth_url,
        "gigachat_mtls_ca_bundle_file": certs.ca_file,
        "gigachat_mtls_cert_file": certs.client_cert,
        "gigachat_mtls_key_file": certs.client_key,
    }


def openai_values(peer: OpenAIPeer) -> dict[str, Any]:
    return {"llm_backend": "openai", "openai_base_url": peer.base_url, "openai_api_key": peer.api_key}
