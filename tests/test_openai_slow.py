"""Slow answers to OpenAI clients: keep-alives while a streamed request waits, OpenAI's own timeout
error past CHAT_WAIT_SECONDS, never a 202. A real server on a loopback port (the `openai` SDK's
sync client, and raw HTTP to see the SSE comments the SDK hides) with a slow dryrun backend."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support import issue_key, live_service, make_settings

HELLO = [{"role": "user", "content": "Скажи привет одним словом"}]


def settings_for(postgres_url: str, kafka_bootstrap: str, **values: Any) -> Any:
    return make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, **values)


def stream_lines(url: str, key: str) -> tuple[int, str, list[str]]:
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "dryrun", "messages": HELLO, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
        return response.status_code, response.headers["content-type"], lines


def test_a_slow_stream_keeps_the_connection_alive_then_streams_the_answer(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=1500, sse_keepalive_seconds=0.2, chat_wait_seconds=30
    )
    key = asyncio.run(issue_key(settings, "editor"))
    with live_service(settings) as url:
        status, content_type, lines = stream_lines(url, key)
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        chunks = list(client.chat.completions.create(model="dryrun", messages=HELLO, stream=True))  # type: ignore[arg-type]
        plain = client.chat.completions.create(model="dryrun", messages=HELLO)  # type: ignore[arg-type]

    assert status == 200 and content_type.startswith("text/event-stream")
    first_data = next(number for number, line in enumerate(lines) if line.startswith("data:"))
    # Comments while the request was queued and processing, then the chunks, then [DONE].
    assert first_data >= 2 and set(lines[:first_data]) == {": keep-alive"}
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[first_data:-1]]
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    streamed = "".join(event["choices"][0]["delta"].get("content") or "" for event in events)
    assert streamed and events[-1]["choices"][0]["finish_reason"] == "stop"
    # The SDK reads the same stream (skipping the comments) and the slow plain call waits too.
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == streamed
    assert plain.choices[0].message.content == streamed


def test_a_stream_past_the_wait_limit_ends_in_an_openai_timeout_error(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=2500, sse_keepalive_seconds=0.2, chat_wait_seconds=1
    )
    key = asyncio.run(issue_key(settings, "editor"))
    with live_service(settings) as url:
        status, _content_type, lines = stream_lines(url, key)
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.APIError) as caught:
            list(client.chat.completions.create(model="dryrun", messages=HELLO, stream=True))  # type: ignore[arg-type]
        assert status == 200 and lines[0] == ": keep-alive"
        (last,) = [line for line in lines if line.startswith("data:")]
        error = json.loads(last.removeprefix("data: "))["error"]
        assert (error["type"], error["code"]) == ("timeout", "timeout")
        request_id = error["message"].split()[1]
        # The SDK raises it (its own request, another id), with the same code.
        assert caught.value.code == "timeout" and "/api/v1/requests/" in caught.value.message
        # The request went on: its answer is readable on /api/v1 once it is done.
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            final = http.get(f"/api/v1/requests/{request_id}", params={"wait": 20}).json()
            assert final["status"] == "completed"
            result = http.get(f"/api/v1/requests/{request_id}/result").json()
    assert result["result"]["message"]["content"]


async def test_models_public_answers_without_a_key(postgres_url: str, kafka_bootstrap: str) -> None:
    from tests.support import running_service

    settings = settings_for(postgres_url, kafka_bootstrap, models_public=True)
    async with running_service(settings, with_worker=False) as svc:
        models = await svc.client.get("/v1/models")
        assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == ["dryrun"]
        # Only the list: a chat completion still needs a key.
        chat = await svc.client.post("/v1/chat/completions", json={"model": "dryrun", "messages": HELLO})
        assert chat.status_code == 401
