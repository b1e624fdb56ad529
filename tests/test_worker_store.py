"""The worker's status transitions behave the same on PostgreSQL (asyncpg) and SQLite (Core), and the
worker's template cache reloads after its TTL, shares concurrent loads and never keeps a failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from service.db import requests_repo as repo
from service.db.models import AnalysisRequest, RequestStatus
from service.db.worker_store import WorkerStore, open_worker_store
from service.usecases.prompt_builder import TTLCache
from tests.support import StoreUnderTest, open_store

_ACCOUNTING = repo.LLMAccounting(
    prompt_tokens=3, completion_tokens=4, total_tokens=7, calls=1, backend="dryrun"
)


Db = StoreUnderTest[WorkerStore]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    async with open_store(database_url, open_worker_store) as opened:
        yield opened


async def test_transitions_only_from_the_expected_status(db: Db) -> None:
    done, cancelled = uuid.uuid4(), uuid.uuid4()
    data = [["Товар", 1.5], ["B", 2]]
    async with db.sessions() as session:
        for request_id in (done, cancelled):
            await repo.insert_request(
                session,
                {"id": request_id, "kind": "spreadsheet", "query_text": "q", "input_data": data,
                 "category": "spreadsheet-analysis", "options": {"language": "en"}},
            )  # fmt: skip
        await session.commit()

    claimed = await db.store.claim(done, 60)
    assert claimed is not None and claimed.id == done and claimed.attempts == 1
    assert claimed.input_data == data and claimed.options == {"language": "en"}
    assert await db.store.claim(done, 60) is None  # a second delivery gets nothing

    # No category given: the row keeps its own; big integers survive the JSON encoding.
    result = {"values": [[2**70]], "text": "t"}
    changed = await db.store.complete(
        claimed.ref, result=result, category=None, accounting=_ACCOUNTING, template_version=5
    )
    assert changed is not None and (changed.id, changed.status) == (done, RequestStatus.COMPLETED)
    assert changed.kind == "spreadsheet" and changed.finished_at is not None and changed.started_at
    assert not await db.store.fail(claimed.ref, code="x", message="late", accounting=_ACCOUNTING)
    async with db.sessions() as session:
        row = await session.get(AnalysisRequest, done)
    assert row is not None and row.status == RequestStatus.COMPLETED and row.result == result
    assert row.category == "spreadsheet-analysis" and row.template_version == 5
    assert row.total_tokens == 7 and row.llm_backend == "dryrun" and row.finished_at is not None
    assert row.lease_expires_at is None

    # Cancelled while processing: neither the result nor a release brings it back.
    claimed = await db.store.claim(cancelled, 60)
    assert claimed is not None
    async with db.sessions() as session:
        await session.execute(
            update(AnalysisRequest)
            .where(AnalysisRequest.id == cancelled)
            .values(status=RequestStatus.CANCELLED)
        )
        await session.commit()
    late = await db.store.complete(
        claimed.ref, result=result, category=None, accounting=_ACCOUNTING, template_version=None
    )
    assert late is None  # nothing changed, so there is nothing to announce
    assert not await db.store.release(claimed.ref)
    async with db.sessions() as session:
        row = await session.get(AnalysisRequest, cancelled)
    assert row is not None and row.status == RequestStatus.CANCELLED and row.result is None


async def test_release_hands_a_claim_back(db: Db) -> None:
    request_id = uuid.uuid4()
    async with db.sessions() as session:
        await repo.insert_request(session, {"id": request_id, "kind": "spreadsheet", "query_text": "q"})
        await session.commit()
    first = await db.store.claim(request_id, 60)
    assert first is not None
    assert await db.store.release(first.ref)
    again = await db.store.claim(request_id, 60)
    assert again is not None and again.attempts == 2
    # The earlier claim is stale now: its holder can neither finish nor release the row.
    assert not await db.store.fail(first.ref, code="late", message="late", accounting=_ACCOUNTING)
    assert not await db.store.release(first.ref)
    await db.store.complete(again.ref, result={"text": "ok"}, category=None, accounting=_ACCOUNTING,
                         template_version=None)  # fmt: skip
    async with db.sessions() as session:
        row = await session.get(AnalysisRequest, request_id)
    assert row is not None and row.status == RequestStatus.COMPLETED and row.error_code is None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_ttl_cache_reloads_after_ttl_and_shares_concurrent_loads() -> None:
    clock = _Clock()
    cache: TTLCache[str, int] = TTLCache(15.0, clock)
    loads = 0
    gate = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return loads

    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [1] * 20 and loads == 1
    clock.now = 14.9
    assert await cache.get("k", load) == 1
    clock.now = 15.1  # an operator's edit is picked up once the TTL is over
    assert await cache.get("k", load) == 2


async def test_ttl_cache_does_not_keep_a_failed_load() -> None:
    cache: TTLCache[str, int] = TTLCache(15.0, _Clock())

    async def broken() -> int:
        raise RuntimeError("database down")

    async def working() -> int:
        return 7

    with pytest.raises(RuntimeError):
        await cache.get("k", broken)
    assert await cache.get("k", working) == 7


async def insert_queued(db: Db, ids: list[uuid.UUID]) -> None:
    async with db.sessions() as session:
        for request_id in ids:
            await repo.insert_request(session, {"id": request_id, "kind": "spreadsheet", "query_text": "q"})
        await session.commit()


async def test_concurrent_claims_share_a_statement_and_a_row_goes_to_one_caller(db: Db) -> None:
    ids = [uuid.uuid4() for _ in range(30)]
    await insert_queued(db, ids)
    # Every row delivered twice at once, as after a lost commit: each is claimed exactly once.
    claims = await asyncio.gather(*(db.store.claim(request_id, 60) for request_id in ids + ids))
    winners = [claim.id for claim in claims if claim is not None]
    assert sorted(winners) == sorted(ids)


async def test_a_completion_the_database_refuses_fails_alone(db: Db) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    await insert_queued(db, ids)
    claims = [await db.store.claim(request_id, 60) for request_id in ids]
    results = [{"text": "bad\x00" if index == 1 else "ok"} for index in range(4)]  # JSONB refuses NUL
    outcomes = await asyncio.gather(
        *(
            db.store.complete(
                claim.ref, result=result, category=None, accounting=_ACCOUNTING, template_version=None
            )
            for claim, result in zip(claims, results, strict=True)
            if claim is not None
        ),
        return_exceptions=True,
    )
    async with db.sessions() as session:
        statuses = [(await session.get(AnalysisRequest, request_id)).status for request_id in ids]  # type: ignore[union-attr]
    assert [statuses[index] for index in (0, 2, 3)] == [RequestStatus.COMPLETED] * 3
    # Each finished row answers its new state (what its completion event carries).
    finished = [outcomes[index] for index in (0, 2, 3)]
    assert [getattr(state, "status", state) for state in finished] == [RequestStatus.COMPLETED] * 3
    assert [getattr(state, "id", None) for state in finished] == [ids[index] for index in (0, 2, 3)]
    if db.dialect == "postgresql":  # SQLite stores NUL; PostgreSQL refuses it, for this row only
        assert isinstance(outcomes[1], Exception) and statuses[1] == RequestStatus.PROCESSING
