"""The OpenAI-compatible surface with the official `openai` SDK as the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from openai import AsyncOpenAI, OpenAI

from service.config import Settings
from tests.peers.fixtures import *  # noqa: F403 - the peers are used by name
from tests.peers.fixtures import openai_values
from tests.peers.openai_server import OpenAIPeer
from tests.support import RunningService, issue_key, live_service, make_settings, running_service


@asynccontextmanager
async def sdk(settings: Settings) -> AsyncIterator[tuple[AsyncOpenAI, RunningService]]:
    """The SDK pointed at the service (base_url …/v1) with a user key, like an editor plugin."""
    key = await issue_key(settings, "editor")
    async with running_service(settings) as svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield AsyncOpenAI(base_url="http://test/v1", api_key=key, http_client=http, max_retries=0), svc


async def test_models_lists_the_dryrun_backend(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    async with sdk(settings) as (client, _svc):
        models = await client.models.list()
    assert [model.id for model in models.data] == ["dryrun"]
    assert models.data[0].object == "model"


async def test_models_come_from_the_backends_own_list_cached(
    postgres_url: str, kafka_bootstrap: str, openai_upstream: OpenAIPeer
) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, **openai_values(openai_upstream)
    )
    async with sdk(settings) as (client, _svc):
        first = await client.models.list()
        second = await client.models.list()
    assert [model.id for model in first.data] == ["gpt-4o-mini"] == [model.id for model in second.data]
    assert len(openai_upstream.calls_to("/models")) == 1  # the second answer came from the cache


async def test_models_need_a_key_and_preflight_passes_for_editor_origins(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    origin = "https://office.example.org"
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, cors_allow_origins=[origin]
    )
    async with running_service(settings, with_worker=False) as svc:
        assert (await svc.client.get("/v1/models")).status_code == 401
        preflight = await svc.client.options(
            "/v1/models",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert 200 <= preflight.status_code < 300
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_the_sync_sdk_reaches_a_live_service(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    key = asyncio.run(issue_key(settings, "editor"))
    with live_service(settings) as url:
        models = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0).models.list()
    assert [model.id for model in models.data] == ["dryrun"]
