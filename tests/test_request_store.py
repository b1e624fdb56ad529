"""The API's hot-path store behaves the same on PostgreSQL (asyncpg) and SQLite (SQLAlchemy Core)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.config import Settings
from service.db.models import AnalysisRequest
from service.db.records import FIELD_NAMES, RequestRecord
from service.db.request_store import DuplicateRequest, open_request_store
from service.db.session import create_engine


def test_record_fields_match_the_table() -> None:
    assert list(FIELD_NAMES) == [column.name for column in AnalysisRequest.__table__.columns]


async def test_insert_then_get_round_trips_every_value(database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url, db_pool_size=2)  # type: ignore[call-arg]
    engine = create_engine(settings)
    store = await open_request_store(settings, engine)
    try:
        request_id = uuid.uuid4()
        data = [["Товар", 1.5, True, None], ["B", -2, False, "x"]]
        await store.insert(
            {
                "id": request_id,
                "kind": "spreadsheet",
                "query_text": "q",
                "input_data": data,
                "options": {"output_range": "F1"},
                "idempotency_key": f"-:{request_id}",
            }
        )
        record = await store.get(request_id)
        assert isinstance(record, RequestRecord)
        assert record.id == request_id and record.status == "queued" and record.attempts == 0
        assert record.input_data == data and record.options == {"output_range": "F1"}
        assert record.created_at.tzinfo is not None
        assert await store.get(uuid.uuid4()) is None
        status = await store.get_status(request_id)
        assert status is not None
        assert (status.id, status.status, status.kind, status.created_at) == (
            record.id,
            record.status,
            record.kind,
            record.created_at,
        )
        assert await store.get_status(uuid.uuid4()) is None
        with pytest.raises(DuplicateRequest):
            await store.insert(
                {"id": uuid.uuid4(), "kind": "spreadsheet", "idempotency_key": f"-:{request_id}"}
            )
    finally:
        await store.close()
        await engine.dispose()


async def test_concurrent_inserts_share_statements_and_a_duplicate_fails_alone(database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url, db_pool_size=2)  # type: ignore[call-arg]
    engine = create_engine(settings)
    store = await open_request_store(settings, engine)
    try:
        taken = f"-:{uuid.uuid4()}"
        await store.insert({"id": uuid.uuid4(), "kind": "spreadsheet", "idempotency_key": taken})
        ids = [uuid.uuid4() for _ in range(40)]
        keys = [taken if index == 17 else None for index in range(40)]
        results = await asyncio.gather(
            *(
                store.insert({"id": i, "kind": "spreadsheet", "idempotency_key": k})
                for i, k in zip(ids, keys, strict=True)
            ),
            return_exceptions=True,
        )
        assert isinstance(results[17], DuplicateRequest)
        assert all(result is None for index, result in enumerate(results) if index != 17)
        stored = [await store.get_status(i) for i in ids]
        assert [record is not None for record in stored] == [index != 17 for index in range(40)]
    finally:
        await store.close()
        await engine.dispose()


async def test_a_row_the_database_refuses_fails_alone(database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url, db_pool_size=2)  # type: ignore[call-arg]
    engine = create_engine(settings)
    store = await open_request_store(settings, engine)
    try:
        ids = [uuid.uuid4() for _ in range(6)]
        texts = ["ok", "ok", "bad\x00", "ok", "ok", "ok"]  # PostgreSQL text cannot hold NUL
        results = await asyncio.gather(
            *(
                store.insert({"id": i, "kind": "spreadsheet", "query_text": t})
                for i, t in zip(ids, texts, strict=True)
            ),
            return_exceptions=True,
        )
        for index, request_id in enumerate(ids):
            if index != 2:
                assert results[index] is None
                assert await store.get_status(request_id) is not None
        if engine.dialect.name == "postgresql":
            assert isinstance(results[2], Exception)
    finally:
        await store.close()
        await engine.dispose()
