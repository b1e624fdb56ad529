"""The answer cache with single flight (issue 17), against the GigaChat peer that counts its calls."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from service.db import answer_cache_repo as repo
from service.db.answer_cache_models import AnswerCacheEntry
from service.db.session import create_engine, create_session_factory
from service.db.unit_of_work import transaction
from service.llm.registry import build_backend
from service.usecases.answer_cache import AnswerCache
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - certs and peers are used by name
from tests.peers.fixtures import cloud_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.support import Worker, bearer, issue_key, make_settings, running_service

CHAT = {"kind": "chat", "messages": [{"role": "user", "content": "How do I freeze the first row?"}]}


def chat_calls(peer: GigaChatPeer) -> int:
    return len(peer.calls_to("/chat/completions"))


async def finished(svc: Any, body: dict[str, Any], key: str) -> dict[str, Any]:
    response = await svc.client.post("/api/v1/requests", json=body, headers=bearer(key))
    assert response.status_code in (200, 202), response.text
    request_id = response.json()["id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        got = await svc.client.get(f"/api/v1/requests/{request_id}", headers=bearer(key))
        if got.json()["status"] in ("completed", "failed", "cancelled", "expired"):
            break
        await asyncio.sleep(0.05)
    result = await svc.client.get(f"/api/v1/requests/{request_id}/result", headers=bearer(key))
    assert result.status_code == 200, result.text
    body_out: dict[str, Any] = result.json()
    return body_out


async def test_hit_miss_bypass_and_owner_scope(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, own_postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        own_postgres_url, kafka_bootstrap, answer_cache=True, **cloud_values(gigachat_cloud, certs)
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        alice, bob = await issue_key(settings, "alice"), await issue_key(settings, "bob")
        first = await finished(svc, CHAT, alice)
        assert first["cached"] is False and first["usage"]["prompt_tokens"] > 0
        assert chat_calls(gigachat_cloud) == 1

        second = await finished(svc, CHAT, alice)  # a hit: no call, no tokens, says who paid
        assert second["cached"] is True and second["cached_from"] == first["id"]
        assert second["result"] == first["result"]
        assert second["usage"]["total_tokens"] == 0 and second["usage"]["llm_calls"] == 0
        assert second["usage"]["tokens_saved"] == first["usage"]["total_tokens"]
        assert chat_calls(gigachat_cloud) == 1

        bypass = await finished(svc, {**CHAT, "cache": False}, alice)
        assert bypass["cached"] is False and chat_calls(gigachat_cloud) == 2

        other_owner = await finished(svc, CHAT, bob)  # owner scope: Bob never gets Alice's answer
        assert other_owner["cached"] is False and chat_calls(gigachat_cloud) == 3

        other_temperature = await finished(svc, {**CHAT, "temperature": 0.9}, alice)
        assert other_temperature["cached"] is False and chat_calls(gigachat_cloud) == 4

        openai_body = {"model": "GigaChat", "messages": CHAT["messages"]}  # another model named: a miss
        for expect_cached, headers, calls in (
            (False, bearer(alice), 5),
            (True, bearer(alice), 5),
            (False, {**bearer(alice), "Cache-Control": "no-cache"}, 6),
        ):
            v1 = await svc.client.post("/v1/chat/completions", json=openai_body, headers=headers)
            assert v1.status_code == 200, v1.text
            assert v1.json().get("cached", False) is expect_cached and chat_calls(gigachat_cloud) == calls

        metrics = (
            await svc.client.get("/metrics", headers=bearer(await issue_key(settings, "ops", "admin")))
        ).text
        assert 'gigaoffice_answer_cache_lookups_total{outcome="hit"}' in metrics


async def test_shared_scope_and_ttl_expiry(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, own_postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        own_postgres_url, kafka_bootstrap, answer_cache=True, answer_cache_scope="shared",
        answer_cache_ttl_seconds=1.0, **cloud_values(gigachat_cloud, certs),
    )  # fmt: skip
    async with running_service(settings, backend=build_backend(settings)) as svc:
        alice, bob = await issue_key(settings, "alice"), await issue_key(settings, "bob")
        first = await finished(svc, CHAT, alice)
        shared = await finished(svc, CHAT, bob)
        assert shared["cached"] is True and shared["cached_from"] == first["id"]
        assert chat_calls(gigachat_cloud) == 1
        await asyncio.sleep(1.2)  # past the TTL: the next one pays again
        again = await finished(svc, CHAT, bob)
        assert again["cached"] is False and chat_calls(gigachat_cloud) == 2


async def test_fifty_identical_requests_make_one_call_across_two_workers(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, own_postgres_url: str, kafka_bootstrap: str
) -> None:
    gigachat_cloud.faults.delay_seconds = 1.0  # every request arrives while the first is in flight
    settings = make_settings(
        own_postgres_url, kafka_bootstrap, answer_cache=True, **cloud_values(gigachat_cloud, certs)
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        second = Worker(settings, backend=build_backend(settings))  # a second worker runtime
        second_task = asyncio.create_task(second.run())
        try:
            key = await issue_key(settings, "sheet")
            results = await asyncio.gather(*(finished(svc, CHAT, key) for _ in range(50)))
        finally:
            second.stop()
            await second_task
    paid = [r for r in results if not r["cached"]]
    assert len(paid) == 1, [r["cached"] for r in results]
    assert {r["cached_from"] for r in results if r["cached"]} == {paid[0]["id"]}
    assert chat_calls(gigachat_cloud) == 1


@pytest.fixture
async def cache(own_postgres_url: str) -> Any:
    settings = make_settings(own_postgres_url, "127.0.0.1:9092", answer_cache_lease_seconds=0.5)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    yield AnswerCache(settings, sessions), sessions
    await engine.dispose()


async def test_a_killed_leader_is_taken_over_after_its_lease(cache: Any) -> None:
    answers, sessions = cache
    key, leader, follower = uuid.uuid4().hex, uuid.uuid4(), uuid.uuid4()
    async with transaction(sessions) as session:  # leads for 2 s, then "dies" without an answer
        assert isinstance(await repo.acquire(session, key, leader, 2.0), repo.Lead)
    async with transaction(sessions) as session:  # while the lease runs, a follower waits
        assert isinstance(await repo.acquire(session, key, follower, 2.0), repo.Wait)
    assert await answers.lead_or_answer(key, follower) is None  # then takes the lead over
    async with transaction(sessions) as session:
        entry = await session.get(AnswerCacheEntry, key)
        assert entry is not None and entry.leader_id == follower


async def test_a_failed_leader_hands_over_at_once_and_the_answer_reaches_followers(cache: Any) -> None:
    answers, sessions = cache
    key, leader, follower = uuid.uuid4().hex, uuid.uuid4(), uuid.uuid4()
    async with transaction(sessions) as session:  # a lease that would outlive the test
        assert isinstance(await repo.acquire(session, key, leader, 3600), repo.Lead)
    waiting = asyncio.create_task(answers.lead_or_answer(key, follower))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await answers.give_up(key, leader)  # the leader's call failed
    assert await asyncio.wait_for(waiting, 5) is None  # the follower leads now
    from service.db.requests_repo import LLMAccounting

    await answers.store(key, follower, {"text": "ok"}, LLMAccounting(total_tokens=7), None, None)
    hit = await answers.lead_or_answer(key, uuid.uuid4())
    assert hit is not None and hit.leader_id == follower and hit.result == {"text": "ok"}
    async with transaction(sessions) as session:  # an old answer is not served
        await session.execute(
            update(AnswerCacheEntry).where(AnswerCacheEntry.key == key).values(expires_at=repo.utcnow())
        )
    assert await answers.lead_or_answer(key, uuid.uuid4()) is None


async def test_the_sweeper_purges_expired_answers_only(cache: Any) -> None:
    answers, sessions = cache
    from service.db.requests_repo import LLMAccounting

    old, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    for key in (old, fresh):
        leader = uuid.uuid4()
        assert await answers.lead_or_answer(key, leader) is None
        await answers.store(key, leader, {"text": key}, LLMAccounting(total_tokens=1), None, None)
    async with transaction(sessions) as session:
        await session.execute(
            update(AnswerCacheEntry).where(AnswerCacheEntry.key == old).values(expires_at=repo.utcnow())
        )
    async with transaction(sessions) as session:
        assert await repo.purge_expired(session, repo.utcnow()) >= 1
    async with transaction(sessions) as session:
        assert await session.get(AnswerCacheEntry, old) is None
        assert await session.get(AnswerCacheEntry, fresh) is not None
