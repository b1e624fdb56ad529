"""Retention and purge, owner export and erasure (issue 18), against PostgreSQL and SQLite."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.audit_models import AuditEntry
from service.db.batch_models import Batch, StoredFile
from service.db.key_models import ApiKey
from service.db.models import AnalysisRequest, Base, utcnow
from service.db.session import create_engine, create_session_factory
from service.db.usage_repo import usage_since
from service.usecases import owner_data, retention
from tests.lifecycle_data import seed_owner
from tests.support import bearer, issue_key, make_settings, running_service


def _owner() -> str:
    return f"key_{uuid.uuid4().hex[:20]}"


async def _usage(session: AsyncSession, owner_id: str) -> dict[tuple[str, str | None], tuple[int, ...]]:
    now = utcnow()
    rows = await usage_since(session, owner_id, now - timedelta(days=30), now - timedelta(hours=2))
    totals: dict[tuple[str, str | None], tuple[int, ...]] = {}
    for r in rows:
        before = totals.get((r.status, r.model), (0, 0, 0, 0))
        add = (r.requests, r.prompt_tokens, r.completion_tokens, r.total_tokens)
        totals[(r.status, r.model)] = tuple(a + b for a, b in zip(before, add, strict=True))
    return totals


async def _ids(session: AsyncSession, owner_id: str) -> set[uuid.UUID]:
    stmt = select(AnalysisRequest.id).where(AnalysisRequest.owner_id == owner_id)
    return set((await session.execute(stmt)).scalars())


async def test_purge_keeps_unfinished_rows_and_usage(database_url: str) -> None:
    settings = make_settings(database_url, "unused:9092", retention_days=30, purge_batch_rows=2)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    short, long = _owner(), _owner()
    try:
        async with sessions() as session:
            # `short`'s key keeps finished requests one day; `long` has the setting's 30 days.
            session.add(
                ApiKey(
                    id=short,
                    name="short",
                    role="user",
                    key_hash=uuid.uuid4().hex * 2,
                    prefix="x",
                    created_at=utcnow(),
                    retention_days=1,
                )
            )
            a = await seed_owner(session, short)
            b = await seed_owner(session, long)
            await session.commit()
        async with sessions() as session:
            usage_before = {o: await _usage(session, o) for o in (short, long)}

        report = await retention.purge(sessions, settings)

        async with sessions() as session:
            assert await _ids(session, short) == a.kept  # unfinished and recent rows stay
            assert await _ids(session, long) == b.kept | b.purgeable
            assert {o: await _usage(session, o) for o in (short, long)} == usage_before
            assert await session.get(Batch, a.batch_id) is None
            assert await session.get(Batch, b.batch_id) is not None
            files = set((await session.execute(select(StoredFile.id))).scalars())
            assert not files & (a.files_expired | a.batch_files) and a.files_kept <= files
            # `long`'s expired upload goes too (expires_after is the file's own), its batch stays.
            assert not files & b.files_expired and (b.files_kept | b.batch_files) <= files
        assert report.requests == len(a.purgeable)
        assert report.batches == 1
        assert report.transactions > len(a.purgeable) // 2  # small batches: two rows at a time
        # A second run finds nothing more.
        assert (await retention.purge(sessions, settings)).requests == 0
    finally:
        await engine.dispose()


async def _count_left(sessions: async_sessionmaker[AsyncSession], owner_id: str) -> dict[str, int]:
    """Rows of the owner in every table of the metadata (children through their parents' ids)."""
    left: dict[str, int] = {}
    async with sessions() as session:
        for scope in owner_data.scopes(owner_id):
            n = (
                await session.execute(select(func.count()).select_from(scope.table).where(scope.where))
            ).scalar_one()
            left[scope.name] = int(n)
        for table in Base.metadata.sorted_tables:
            for column in table.c:
                if column.name == "request_id":
                    owned = select(AnalysisRequest.id).where(AnalysisRequest.owner_id == owner_id)
                    n = (
                        await session.execute(
                            select(func.count()).select_from(table).where(column.in_(owned))
                        )
                    ).scalar_one()
                    left[f"{table.name}.request_id"] = int(n)
    return left


async def test_erasure_leaves_nothing_and_is_idempotent(database_url: str) -> None:
    settings = make_settings(database_url, "unused:9092")
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    gone, stays = _owner(), _owner()
    try:
        async with sessions() as session:
            await seed_owner(session, gone)
            await seed_owner(session, stays)
            await session.commit()
        stays_before = await _count_left(sessions, stays)
        covered = {s.name for s in owner_data.scopes(gone)}
        owned_tables = {t.name for t in Base.metadata.sorted_tables if "owner_id" in t.c} - {"audit_log"}
        assert owned_tables <= covered

        first = await owner_data.erase(sessions, gone, "admin-key")
        assert first["requests"] == 12 and first["file_parts"] == 3
        assert all(n == 0 for n in (await _count_left(sessions, gone)).values())
        assert await _count_left(sessions, stays) == stays_before

        assert await owner_data.erase(sessions, gone, "admin-key") == {}
        async with sessions() as session:
            stmt = select(AuditEntry).where(AuditEntry.target_id == gone).order_by(AuditEntry.id)
            tombstones = (await session.execute(stmt)).scalars().all()
        assert [t.action for t in tombstones] == ["owner.erased", "owner.erased"]
        assert tombstones[0].after == {"deleted": first} and tombstones[0].actor == "admin-key"
    finally:
        await engine.dispose()


async def test_export_round_trips(database_url: str) -> None:
    settings = make_settings(database_url, "unused:9092")
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    owner = _owner()
    try:
        async with sessions() as session:
            await seed_owner(session, owner)
            await session.commit()
        lines = [json.loads(line) async for line in owner_data.export_lines(sessions, owner)]
        by_table: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_table.setdefault(line["table"], []).append(line["row"])
        # Every row of the owner is there, once, with every column but secrets.
        async with sessions() as session:
            for scope in owner_data.scopes(owner):
                rows = (await session.execute(select(scope.table).where(scope.where))).mappings().all()
                expected = sorted(
                    json.dumps(
                        {
                            k: owner_data._jsonable(v)
                            for k, v in r.items()
                            if k not in owner_data.SECRET_COLUMNS
                        },
                        sort_keys=True,
                    )
                    for r in rows
                )
                got = sorted(json.dumps(r, sort_keys=True) for r in by_table.get(scope.name, []))
                assert got == expected, scope.name
        assert len(by_table["requests"]) == 12
        assert all("secret" not in r for r in by_table["webhook_endpoints"])
    finally:
        await engine.dispose()


async def test_owner_routes(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    admin = bearer(await issue_key(settings, "admin", "admin"))
    name = f"user-{uuid.uuid4().hex[:8]}"  # its own name: other tests' keys share this database
    user_secret = await issue_key(settings, name)
    user = bearer(user_secret)
    async with running_service(settings, with_worker=False) as svc:
        keys = (await svc.client.get("/api/v1/keys", headers=admin)).json()
        user_id = next(k["id"] for k in keys if k["name"] == name)
        async with svc.sessions() as session:
            await seed_owner(session, user_id)
            await session.commit()
        own = await svc.client.get("/api/v1/export", headers=user)
        assert own.status_code == 200 and own.headers["content-type"].startswith("application/x-ndjson")
        tables = {json.loads(line)["table"] for line in own.text.splitlines()}
        assert {"requests", "batches", "files", "feedback", "webhook_endpoints", "api_keys"} <= tables
        assert "key_hash" not in own.text and "whsec_test" not in own.text

        # A user key cannot export or erase another owner.
        assert (await svc.client.get(f"/api/v1/owners/{user_id}/export", headers=user)).status_code == 403
        assert (await svc.client.delete(f"/api/v1/owners/{user_id}", headers=user)).status_code == 403

        by_admin = await svc.client.get(f"/api/v1/owners/{user_id}/export", headers=admin)
        assert by_admin.text == own.text
        erased = await svc.client.delete(f"/api/v1/owners/{user_id}", headers=admin)
        assert erased.status_code == 200 and erased.json()["deleted"]["requests"] == 12
        # The erased key is gone with its data.
        assert (await svc.client.get("/api/v1/export", headers=user)).status_code == 401
        again = await svc.client.delete(f"/api/v1/owners/{user_id}", headers=admin)
        assert again.status_code == 200 and again.json()["deleted"] == {}
        audit = (await svc.client.get(f"/api/v1/audit?target_id={user_id}", headers=admin)).json()["data"]
        actions = [e["action"] for e in audit]
        assert actions == ["owner.erased", "owner.erased", "owner.exported", "key.created"]
