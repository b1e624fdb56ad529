"""All SQL about API keys. Callers own the session and decide when to commit."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.key_models import ApiKey

# Limits and descriptive fields an update may change; the hash, id and timestamps never change.
UPDATABLE = (
    "name",
    "role",
    "requests_per_minute",
    "tokens_per_minute",
    "daily_tokens",
    "monthly_tokens",
    "retention_days",
)


async def add_key(session: AsyncSession, row: ApiKey) -> ApiKey:
    session.add(row)
    await session.flush()
    return row


async def get_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_keys(session: AsyncSession, *, include_revoked: bool) -> Sequence[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return (await session.execute(stmt)).scalars().all()


async def update_key(session: AsyncSession, row: ApiKey, values: dict[str, Any]) -> ApiKey:
    unknown = set(values) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"an update cannot set {sorted(unknown)}")
    for name, value in values.items():
        setattr(row, name, value)
    await session.flush()
    return row


async def touch_last_used(session: AsyncSession, key_ids: Collection[str], now: datetime) -> None:
    stmt = (
        update(ApiKey)
        .where(ApiKey.id.in_(list(key_ids)))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(stmt)
