"""Conversations: a caller's threads (create, list, read, delete, owner-scoped), and follow-up
requests whose prompt carries the earlier turns within a token budget. Real PostgreSQL, broker and
worker (dryrun backend, recorded by tests.support.CountingBackend)."""

from __future__ import annotations

import uuid
from typing import Any

from service.kinds.history import with_history
from service.llm.base import ChatMessage, ChatRequest, estimate_tokens
from tests.support import SEED_EXAMPLE, RunningService, bearer, issue_key, make_settings, running_service

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}
CONVERSATIONS = "/api/v1/conversations"


async def _completed(svc: RunningService, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    response = await svc.client.post("/api/v1/requests", json=body, headers=headers)
    assert response.status_code == 202, response.text
    final = await svc.wait_final(response.json()["id"]) if headers is None else None
    request_id = str(response.json()["id"])
    if final is not None:
        assert final["status"] == "completed", final
    return request_id


async def test_conversations_are_the_callers_own_on_every_route_and_at_submit(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    a, b = bearer(await issue_key(settings, "A")), bearer(await issue_key(settings, "B"))
    async with running_service(settings, with_worker=False) as svc:
        c = svc.client
        created = [(await c.post(CONVERSATIONS, json={"title": f"t{n}"}, headers=a)).json() for n in range(3)]
        untitled = await c.post(CONVERSATIONS, headers=b)  # no body: no title
        assert untitled.status_code == 201 and untitled.json()["title"] is None, untitled.text
        # Newest first, the caller's own only, in pages by keyset.
        first = (await c.get(CONVERSATIONS, params={"limit": 2}, headers=a)).json()
        assert [x["title"] for x in first["data"]] == ["t2", "t1"] and first["has_more"] is True
        after = first["data"][-1]["id"]
        rest = (await c.get(CONVERSATIONS, params={"limit": 2, "after": after}, headers=a)).json()
        assert [x["title"] for x in rest["data"]] == ["t0"] and rest["has_more"] is False
        mine = (await c.get(CONVERSATIONS, headers=b)).json()["data"]
        assert [x["id"] for x in mine] == [untitled.json()["id"]]

        target = created[0]["id"]
        detail = await c.get(f"/api/v1/conversations/{target}", headers=a)
        assert detail.status_code == 200 and detail.json()["messages"] == [], detail.text
        # B: exactly what an unknown id gets, on every route and as a submit's conversation_id.
        unknown = str(uuid.uuid4())
        for conversation_id in (target, unknown):
            got = await c.get(f"/api/v1/conversations/{conversation_id}", headers=b)
            gone = await c.delete(f"/api/v1/conversations/{conversation_id}", headers=b)
            page = await c.get(CONVERSATIONS, params={"after": conversation_id}, headers=b)
            submit = await c.post(
                "/api/v1/requests",
                json={"kind": "text", "question": "Hi?", "conversation_id": conversation_id},
                headers=b,
            )
            for response in (got, gone, page, submit):
                assert response.status_code == 404, response.text
                assert response.json()["error"]["message"] == f"No conversation with id {conversation_id}."
        assert (await c.get(f"/api/v1/conversations/{target}", headers=a)).status_code == 200

        assert (await c.delete(f"/api/v1/conversations/{target}", headers=a)).status_code == 204
        assert (await c.get(f"/api/v1/conversations/{target}", headers=a)).status_code == 404
        assert (await c.delete(f"/api/v1/conversations/{target}", headers=a)).status_code == 404
        assert (await c.post(CONVERSATIONS, json={"title": "x" * 301}, headers=a)).status_code == 422


async def test_a_follow_up_carries_the_earlier_turns_and_the_answer_joins_when_completed(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        conversation_id = (await svc.client.post(CONVERSATIONS, json={})).json()["id"]
        await _completed(svc, {**SPREADSHEET, "conversation_id": conversation_id})
        assert not svc.backend.calls[-1].messages  # the first request has no earlier turns
        turns = (await svc.client.get(f"/api/v1/conversations/{conversation_id}")).json()["messages"]
        assert [t["role"] for t in turns] == ["user", "assistant"]
        assert turns[0]["content"] == SEED_EXAMPLE["query_text"]  # the user's words, not the range
        assert turns[1]["content"]  # the answer as stored

        text_id = await _completed(
            svc, {"kind": "text", "question": "Now sort it by March", "conversation_id": conversation_id}
        )
        sent = svc.backend.calls[-1].messages
        assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[1].content == SEED_EXAMPLE["query_text"] and sent[2].content == turns[1]["content"]
        assert "Now sort it by March" in sent[3].content

        await _completed(
            svc,
            {
                "kind": "chat",
                "messages": [{"role": "user", "content": "And by April?"}],
                "conversation_id": conversation_id,
            },
        )
        sent = svc.backend.calls[-1].messages
        assert [m.role for m in sent] == ["user", "assistant", "user", "assistant", "user"]
        assert sent[-1].content == "And by April?"

        turns = (await svc.client.get(f"/api/v1/conversations/{conversation_id}")).json()["messages"]
        assert [t["content"] for t in turns[::2]] == [
            SEED_EXAMPLE["query_text"],
            "Now sort it by March",
            "And by April?",
        ]
        assert turns[3]["request_id"] == text_id

        # A request without a conversation is untouched by any.
        await _completed(svc, {"kind": "text", "question": "Standalone?"})
        assert [m.role for m in svc.backend.calls[-1].conversation()] == ["system", "user"]


async def test_the_budget_drops_the_oldest_turns_and_never_the_range_data(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    # A budget the range data alone exceeds: every earlier turn goes, the range stays whole.
    settings = make_settings(postgres_url, kafka_bootstrap, conversation_token_budget=100)
    rows = [["Товар", "Январь", "Февраль", "Март"]] + [[f"Товар {n}", n, n + 1, n + 2] for n in range(40)]
    async with running_service(settings) as svc:
        conversation_id = (await svc.client.post(CONVERSATIONS, json={})).json()["id"]
        await _completed(
            svc, {"kind": "text", "question": "What is a pivot table?", "conversation_id": conversation_id}
        )
        follow_up = {
            **SPREADSHEET,
            "input_range": "A1:D41",
            "input_data": rows,
            "conversation_id": conversation_id,
        }
        await _completed(svc, follow_up)
        sent = svc.backend.calls[-1].conversation()
        assert [m.role for m in sent] == ["system", "user"]  # no earlier turn fitted
        assert all(f"Товар {n}" in sent[-1].content for n in range(40))  # the whole range was sent
        assert sum(estimate_tokens(m.content) for m in sent) > 100


def test_with_history_keeps_the_newest_turns_that_fit_oldest_dropped_first() -> None:
    own = ChatRequest(system="sys", user="range data " * 50)
    turns = [
        ChatMessage("user" if n % 2 == 0 else "assistant", f"turn {n} " + "word " * 20) for n in range(6)
    ]
    cost = [estimate_tokens(t.content) for t in turns]
    base = estimate_tokens(own.system) + estimate_tokens(own.user)
    # Room for exactly the last two turns (and a bit): turns 4 and 5 stay, 0..3 go.
    kept = with_history(own, turns, base + cost[4] + cost[5] + 1).messages
    assert [m.content for m in kept] == [own.system, turns[4].content, turns[5].content, own.user]
    # Room for three: the third newest is an answer without its question, so it goes too.
    kept = with_history(own, turns, base + cost[3] + cost[4] + cost[5] + 1).messages
    assert [m.content for m in kept[1:-1]] == [turns[4].content, turns[5].content]
    # Everything fits: all, in order; nothing fits: the request exactly as the kind built it.
    assert with_history(own, turns, 10**6).messages[1:-1] == tuple(turns)
    assert with_history(own, turns, base) == own
