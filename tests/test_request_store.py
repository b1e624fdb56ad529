"""The API's hot-path store behaves the same on PostgreSQL (asyncpg) and SQLite (SQLAlchemy Core)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from service.db.models import AnalysisRequest
from service.db.records import FIELD_NAMES, NOT_IN_RECORD, RequestRecord
from service.db.request_store import DuplicateRequest, RequestStore, open_request_store
from tests.support import StoreUnderTest, open_store

Db = StoreUnderTest[RequestStore]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    async with open_store(database_url, open_request_store) as opened:
        yield opened


def test_record_fields_match_the_table() -> None:
    columns = [column.name for column in AnalysisRequest.__table__.columns]
    assert list(FIELD_NAMES) == [name for name in columns if name not in NOT_IN_RECORD]


async def test_insert_then_get_round_trips_every_value(db: Db) -> None:
    request_id = uuid.uuid4()
    data = [["Товар", 1.5, True, None], ["B", -2, False, "x"]]
    await db.store.insert(
        {
            "id": request_id,
            "kind": "spreadsheet",
            "query_text": "q",
            "input_data": data,
            "options": {"output_range": "F1"},
            "idempotency_key": f"-:{request_id}",
        }
    )
    record = await db.store.get(request_id)
    assert isinstance(record, RequestRecord)
    assert record.id == request_id and record.status == "queued" and record.attempts == 0
    assert record.input_data == data and record.options == {"output_range": "F1"}
    assert record.created_at.tzinfo is not None
    assert await db.store.get(uuid.uuid4()) is None
    status = await db.store.get_status(request_id)
    assert status is not None
    assert (status.id, status.status, status.kind, status.created_at) == (
        record.id,
        record.status,
        record.kind,
        record.created_at,
    )
    assert await db.store.get_status(uuid.uuid4()) is None
    with pytest.raises(DuplicateRequest):
        await db.store.insert(
            {"id": uuid.uuid4(), "kind": "spreadsheet", "idempotency_key": f"-:{request_id}"}
        )


async def test_concurrent_inserts_share_statements_and_a_duplicate_fails_alone(db: Db) -> None:
    taken = f"-:{uuid.uuid4()}"
    await db.store.insert({"id": uuid.uuid4(), "kind": "spreadsheet", "idempotency_key": taken})
    ids = [uuid.uuid4() for _ in range(40)]
    keys = [taken if index == 17 else None for index in range(40)]
    results = await asyncio.gather(
        *(
            db.store.insert({"id": i, "kind": "spreadsheet", "idempotency_key": k})
            for i, k in zip(ids, keys, strict=True)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[17], DuplicateRequest)
    assert all(result is None for index, result in enumerate(results) if index != 17)
    stored = [await db.store.get_status(i) for i in ids]
    assert [record is not None for record in stored] == [index != 17 for index in range(40)]


async def test_a_row_the_database_refuses_fails_alone(db: Db) -> None:
    ids = [uuid.uuid4() for _ in range(6)]
    texts = ["ok", "ok", "bad\x00", "ok", "ok", "ok"]  # PostgreSQL text cannot hold NUL
    results = await asyncio.gather(
        *(
            db.store.insert({"id": i, "kind": "spreadsheet", "query_text": t})
            for i, t in zip(ids, texts, strict=True)
        ),
        return_exceptions=True,
    )
    for index, request_id in enumerate(ids):
        if index != 2:
            assert results[index] is None
            assert await db.store.get_status(request_id) is not None
    if db.dialect == "postgresql":
        assert isinstance(results[2], Exception)
