"""Everything one owner has, exported as JSONL or erased (docs/lifecycle.md).

The tables are found through the metadata: every table with an `owner_id` column belongs to its
owner row by row, and the listed child tables (batch lines, file parts, webhook deliveries,
conversation messages) belong
to their parent's owner. A table added later with an `owner_id` column is covered without a change
here. The audit log is the exception on purpose: it is never erased (the erasure adds a tombstone).

Both walk the rows in keyset-ordered chunks, each read or deleted in a short transaction of its
own, so memory stays flat and no lock is held for long, whatever the owner's size.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import conversation_models  # noqa: F401  (its tables join the metadata walked here)
from service.db.audit_models import AuditEntry
from service.db.models import Base
from service.db.unit_of_work import transaction
from service.usecases import audit

# Never exported: secrets and their digests.
SECRET_COLUMNS = {"key_hash", "secret", "previous_secret"}
# Child tables: (table, its column naming the parent, the parent table).
CHILDREN = (
    ("batch_lines", "batch_id", "batches"),
    ("file_parts", "file_id", "files"),
    ("webhook_deliveries", "endpoint_id", "webhook_endpoints"),
    ("conversation_messages", "conversation_id", "conversations"),
)
NEVER = {AuditEntry.__tablename__}
_CHUNK = 500
_PART_CHUNK = 4  # file parts are up to 1 MB each


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    table: Table
    where: ColumnElement[bool]
    chunk: int


def _owned_tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if "owner_id" in t.c and t.name not in NEVER]


def scopes(owner_id: str) -> list[Scope]:
    """Children first (the order an erasure must follow), then the owned tables, the key last."""
    tables = Base.metadata.tables
    found: list[Scope] = []
    for child, column, parent in CHILDREN:
        if child in tables and parent in tables:
            parents = select(tables[parent].c.id).where(tables[parent].c.owner_id == owner_id)
            chunk = _PART_CHUNK if child == "file_parts" else _CHUNK
            found.append(Scope(child, tables[child], tables[child].c[column].in_(parents), chunk))
    # Children of requests (feedback has an owner_id of its own) come before the requests.
    owned = sorted(_owned_tables(), key=lambda t: t.name == "requests")
    found += [Scope(t.name, t, t.c.owner_id == owner_id, _CHUNK) for t in owned]
    if "api_keys" in tables:
        found.append(Scope("api_keys", tables["api_keys"], tables["api_keys"].c.id == owner_id, _CHUNK))
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _pk(table: Table) -> list[Column[Any]]:
    return list(table.primary_key.columns)


async def _chunk(session: AsyncSession, scope: Scope, after: tuple[Any, ...] | None) -> Sequence[Any]:
    pk = _pk(scope.table)
    stmt = select(scope.table).where(scope.where).order_by(*pk).limit(scope.chunk)
    if after is not None:
        stmt = stmt.where(tuple_(*pk) > tuple_(*after) if len(pk) > 1 else pk[0] > after[0])
    return (await session.execute(stmt)).mappings().all()


async def export_lines(sessions: async_sessionmaker[AsyncSession], owner_id: str) -> AsyncIterator[str]:
    """One JSON line per row: {"table": ..., "row": {...}}, table by table (secrets left out)."""
    for scope in reversed(scopes(owner_id)):  # parents first: easier to read back
        after: tuple[Any, ...] | None = None
        while True:
            async with sessions() as session:
                rows = await _chunk(session, scope, after)
            for row in rows:
                data = {k: _jsonable(v) for k, v in row.items() if k not in SECRET_COLUMNS}
                yield json.dumps({"table": scope.name, "row": data}, ensure_ascii=False) + "\n"
            if len(rows) < scope.chunk:
                break
            after = tuple(rows[-1][c.name] for c in _pk(scope.table))


async def erase(sessions: async_sessionmaker[AsyncSession], owner_id: str, actor: str) -> dict[str, int]:
    """Deletes every row of the owner, chunk by chunk; then the tombstone. Erasing twice is
    harmless (the second finds nothing and says so in its own tombstone)."""
    counts: dict[str, int] = {}
    for scope in scopes(owner_id):
        pk = _pk(scope.table)
        while True:
            async with transaction(sessions) as session:
                keys = select(*pk).where(scope.where).limit(scope.chunk)
                if len(pk) == 1:
                    result: Any = await session.execute(delete(scope.table).where(pk[0].in_(keys)))
                else:
                    picked = (await session.execute(keys)).all()
                    if not picked:
                        break
                    result = await session.execute(
                        delete(scope.table).where(tuple_(*pk).in_([tuple(p) for p in picked]))
                    )
            done = int(result.rowcount or 0)
            if done:
                counts[scope.name] = counts.get(scope.name, 0) + done
            if done < scope.chunk:
                break
    async with transaction(sessions) as session:
        audit.record(session, actor, "owner.erased", "owner", owner_id, after={"deleted": counts})
    return counts
