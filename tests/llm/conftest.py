"""Settings builders for the LLM tests; peers and certificates come from tests/peers/fixtures.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from loguru import logger

from service.config import Settings
from service.llm.base import ChatRequest, LLMBackend
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - the fixtures are used by name
from tests.peers.fixtures import cloud_values, mtls_values, openai_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.peers.openai_server import OpenAIPeer


def make_settings(**values: Any) -> Settings:
    """Settings from explicit values only: no .env file; LLM_* env vars are cleared by `clean_env`."""
    return Settings(_env_file=None, **values)


def cloud_settings(peer: GigaChatPeer, certs: CertBundle, **values: Any) -> Settings:
    return make_settings(**(cloud_values(peer, certs) | values))


def mtls_settings(peer: GigaChatPeer, certs: CertBundle, **values: Any) -> Settings:
    return make_settings(**(mtls_values(peer, certs) | values))


def openai_settings(peer: OpenAIPeer, **values: Any) -> Settings:
    return make_settings(**(openai_values(peer) | values))


def ask(user: str = "hello", **values: Any) -> ChatRequest:
    return ChatRequest(system="You are a test.", user=user, **values)


@asynccontextmanager
async def started(backend: LLMBackend) -> AsyncIterator[LLMBackend]:
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real GIGACHAT_*/OPENAI_*/LLM_* variables of the machine must not steer the tests (nor the SDKs)."""
    import os

    for name in list(os.environ):
        if name.startswith(("GIGACHAT_", "OPENAI_", "LLM_")):
            monkeypatch.delenv(name)


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Everything loguru emits during the test, at every level, as formatted lines."""
    lines: list[str] = []
    sink: Callable[[Any], None] = lambda message: lines.append(str(message))  # noqa: E731
    handler = logger.add(sink, level="TRACE", format="{level} {name} {message} {extra} {exception}")
    yield lines
    logger.remove(handler)
