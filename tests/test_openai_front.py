"""The OpenAI-compatible surface with the official `openai` SDK as the client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from sqlalchemy import func, select

from service.config import Settings
from service.db.models import AnalysisRequest
from tests.peers.fixtures import *  # noqa: F403 - the peers are used by name
from tests.peers.fixtures import openai_values
from tests.peers.openai_server import OpenAIPeer
from tests.support import RunningService, issue_key, live_service, make_settings, running_service

HELLO = [{"role": "user", "content": "Скажи привет одним словом"}]


@asynccontextmanager
async def sdk(settings: Settings) -> AsyncIterator[tuple[AsyncOpenAI, RunningService]]:
    """The SDK pointed at the service (base_url …/v1) with a user key, like an editor plugin."""
    key = await issue_key(settings, "editor")
    async with running_service(settings, api_key=key) as svc:
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
        chat = await svc.client.options(
            "/v1/chat/completions",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert 200 <= chat.status_code < 300 and chat.headers["access-control-allow-origin"] == origin


def test_the_sync_sdk_reaches_a_live_service(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    key = asyncio.run(issue_key(settings, "editor"))
    with live_service(settings) as url:
        models = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0).models.list()
    assert [model.id for model in models.data] == ["dryrun"]


async def test_chat_completion_through_the_queue_is_a_normal_request(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    async with sdk(settings) as (client, svc):
        completion = await client.chat.completions.create(model="dryrun", messages=HELLO)  # type: ignore[arg-type]
        assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
        message = completion.choices[0].message
        assert message.role == "assistant" and message.content
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None and completion.usage.total_tokens > 0
        # Owned, accounted and visible like any request (the caller's key reads it).
        request_id = uuid.UUID(hex=completion.id.removeprefix("chatcmpl-"))
        status = (await svc.client.get(f"/api/v1/requests/{request_id}")).json()
        assert (status["kind"], status["status"]) == ("chat", "completed")
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()
        assert result["usage"]["total_tokens"] == completion.usage.total_tokens

        # The same question streamed: role, the content, the finish reason, then [DONE].
        stream = await client.chat.completions.create(model="dryrun", messages=HELLO, stream=True)  # type: ignore[arg-type]
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)


def test_sync_sdk_chat_with_an_openai_protocol_peer_as_the_backend(
    postgres_url: str, kafka_bootstrap: str, openai_upstream: OpenAIPeer
) -> None:
    openai_upstream.reply_text = "Привет!"
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, **openai_values(openai_upstream)
    )
    key = asyncio.run(issue_key(settings, "editor"))
    with live_service(settings) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Привет!"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None and completion.usage.total_tokens == 18  # the peer's figures
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Привет!"
    # The peer saw the conversation as the editor sent it.
    sent = openai_upstream.calls_to("/chat/completions")[0].body
    assert sent["messages"][-1] == HELLO[0]


async def test_chat_past_the_wait_limit_answers_an_openai_timeout_never_a_202(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, dryrun_latency_ms=3000, chat_wait_seconds=0.5
    )
    async with sdk(settings) as (client, svc):
        # The SDK's default retries stay on: the 504 tells it not to submit the question again.
        retrying = client.with_options(max_retries=2)
        with pytest.raises(openai.InternalServerError) as caught:
            await retrying.chat.completions.create(model="dryrun", messages=HELLO)  # type: ignore[arg-type]
        response = caught.value.response
        assert response.status_code == 504
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("timeout", "timeout")
        request_id = response.headers["location"].rsplit("/", 1)[-1]
        assert request_id in error["message"] and f"/api/v1/requests/{request_id}/result" in error["message"]
        async with svc.sessions() as session:
            owner = select(AnalysisRequest.owner_id).where(AnalysisRequest.id == uuid.UUID(request_id))
            mine = select(func.count()).where(AnalysisRequest.owner_id == owner.scalar_subquery())
            assert await session.scalar(mine) == 1  # submitted once
        # The request went on; its answer is readable on /api/v1.
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed"
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()
        assert result["result"]["message"]["content"]


async def test_errors_on_v1_are_in_openais_shape(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, dryrun_failure_rate=1.0)
    async with sdk(settings) as (client, svc):
        invalid = await svc.client.post("/v1/chat/completions", json={"model": "dryrun", "messages": []})
        assert invalid.status_code == 422
        error = invalid.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"] and "code" in error
        with pytest.raises(openai.UnprocessableEntityError):
            await client.chat.completions.create(
                model="dryrun", messages=[{"role": "system", "content": "x"}]
            )
        # The backend fails: the SDK gets an error it understands, not a 200 without an answer.
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(model="dryrun", messages=HELLO)  # type: ignore[arg-type]
        assert failed.value.status_code >= 500
        assert (
            await svc.client.post(
                "/v1/chat/completions", json={"messages": HELLO}, headers={"Authorization": "Bearer nope"}
            )
        ).json()["error"]["type"] == "authentication_error"
