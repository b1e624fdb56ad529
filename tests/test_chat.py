"""Request kind `chat`: a caller's own messages through the broker and worker, without a template."""

from __future__ import annotations

from typing import Any

import pytest

from service.llm.registry import build_backend
from tests.peers.fixtures import *  # noqa: F403 - peers are used by name
from tests.peers.fixtures import openai_values
from tests.peers.openai_server import OpenAIPeer
from tests.support import make_settings, running_service

CONVERSATION = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What is a pivot table?"},
    {"role": "assistant", "content": "A summary of a table grouped by some of its columns."},
    {"role": "user", "content": "And how do I make one in a spreadsheet editor?"},
]


async def test_chat_request_end_to_end_with_dryrun(database_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.submit({"kind": "chat", "messages": CONVERSATION, "max_tokens": 100})
        assert response.status_code == 202, response.text
        assert response.json()["kind"] == "chat"
        final = await svc.wait_final(response.json()["id"])
        assert final["status"] == "completed", final
        assert final["category"] is None  # no classification, no template
        body = (await svc.client.get(f"/api/v1/requests/{final['id']}/result")).json()
        message = body["result"]["message"]
        assert message["role"] == "assistant"
        # Derived from the last user turn: 4 messages, and its words.
        assert "4-message" in message["content"] and "spreadsheet" in message["content"]
        assert body["result"]["usage"]["total_tokens"] == body["usage"]["total_tokens"] > 0
        sent = svc.backend.calls[0]
        assert [m.role for m in sent.messages] == ["system", "user", "assistant", "user"]
        assert sent.max_tokens == 100


async def test_chat_messages_reach_an_openai_compatible_backend_unchanged(
    openai_upstream: OpenAIPeer, postgres_url: str, kafka_bootstrap: str
) -> None:
    openai_upstream.reply_text = "Select the range, then Insert → Pivot table."
    settings = make_settings(postgres_url, kafka_bootstrap, **openai_values(openai_upstream))
    async with running_service(settings, backend=build_backend(settings)) as svc:
        body = {"kind": "chat", "messages": CONVERSATION, "temperature": 0.7, "model": "custom-model"}
        request_id = (await svc.submit(body)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed", final
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()["result"]
        assert result["message"]["content"] == "Select the range, then Insert → Pivot table."
        (call,) = openai_upstream.calls_to("/chat/completions")
        assert call.body["messages"] == CONVERSATION
        assert call.body["temperature"] == 0.7
        assert call.body["model"] == "custom-model"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"messages": [{"role": "system", "content": "only a system turn"}]}, "user message"),
        ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x" * 300}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "name"),
    ],
)
async def test_bad_chat_requests_are_refused_with_422(
    body: dict[str, Any], where: str, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, max_input_chars=200, llm_max_tokens=1000)
    async with running_service(settings, with_worker=False) as svc:
        response = await svc.submit({"kind": "chat", **body})
        assert response.status_code == 422, response.text
        assert where in response.text
