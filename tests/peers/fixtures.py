"""Pytest fixtures for the LLM peers. Import them into a conftest: `from tests.peers.fixtures import *`.

Servers start once per session; the function-scoped fixtures hand each test a peer with its knobs
and recorded calls reset, so tests cannot leak faults into each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.certs import CertBundle, generate_certs
from tests.peers.gigachat_server import GigaChatPeer, gigachat_peer
from tests.peers.openai_server import OpenAIPeer, openai_peer

__all__ = [
    "certs",
    "gigachat_cloud",
    "gigachat_cloud_server",
    "gigachat_mtls",
    "gigachat_mtls_server",
    "openai_server",
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
def openai_server() -> Iterator[OpenAIPeer]:
    with openai_peer() as peer:
        yield peer


@pytest.fixture
def gigachat_cloud(gigachat_cloud_server: GigaChatPeer) -> GigaChatPeer:
    gigachat_cloud_server.reset()
    return gigachat_cloud_server


@pytest.fixture
def gigachat_mtls(gigachat_mtls_server: GigaChatPeer) -> GigaChatPeer:
    gigachat_mtls_server.reset()
    return gigachat_mtls_server


@pytest.fixture
def openai_upstream(openai_server: OpenAIPeer) -> OpenAIPeer:
    openai_server.reset()
    return openai_server
