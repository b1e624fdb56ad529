"""SQL of the answer cache and its single flight. Callers own the session and commit.

A key's row is either a lead (`pending`: one request is calling the LLM, until its lease runs out)
or an answer (`ready`, until `expires_at`). Taking the lead is an INSERT that loses to an existing
row, or a conditional UPDATE of a row whose lead ran out or whose answer expired: exactly one
contender wins on either database, with no lock held while the model thinks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.answer_cache_models import AnswerCacheEntry
from service.db.models import utcnow

_T = AnswerCacheEntry
PENDING = "pending"
READY = "ready"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    leader_id: uuid.UUID  # the request that paid for it
    result: Any
    category: str | None
    template_version: int | None
    total_tokens: int
    backend: str | None
    model: str | None


@dataclass(frozen=True, slots=True)
class Lead:
    """This request makes the call (a fresh lead, or one taken over from a lost leader)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Another request is calling the LLM for the same key: look again shortly."""


LEAD, WAIT = Lead(), Wait()


async def acquire(
    session: AsyncSession, key: str, request_id: uuid.UUID, lease_seconds: float
) -> CachedAnswer | Lead | Wait:
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    values = {
        "key": key, "status": PENDING, "leader_id": request_id, "lease_expires_at": lease, "created_at": now,
    }  # fmt: skip
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(_T).values(**values).on_conflict_do_nothing(index_elements=["key"])
    if (await session.execute(stmt)).rowcount == 1:  # type: ignore[attr-defined]
        return LEAD
    row = (await session.execute(select(_T).where(_T.key == key))).scalar_one_or_none()
    if row is None:  # removed (a failed lead) between the two statements
        return WAIT
    if row.status == READY and row.expires_at is not None and row.expires_at > now:
        return CachedAnswer(
            row.leader_id, row.result, row.category, row.template_version, row.total_tokens,
            row.llm_backend, row.llm_model,
        )  # fmt: skip
    if row.status == PENDING and row.leader_id == request_id:
        return LEAD  # redelivered to the same request: its own lead
    # A lead that ran out (its worker died) or an expired answer: whoever updates it first leads.
    lost = or_(
        (_T.status == PENDING) & (_T.lease_expires_at < now),
        (_T.status == READY) & (_T.expires_at <= now),
    )
    taken = await session.execute(
        update(_T)
        .where(_T.key == key, lost)
        .values(status=PENDING, leader_id=request_id, lease_expires_at=lease, result=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return LEAD if taken.rowcount == 1 else WAIT  # type: ignore[attr-defined]


async def store(
    session: AsyncSession,
    key: str,
    request_id: uuid.UUID,
    *,
    ttl_seconds: float,
    result: Any,
    category: str | None,
    template_version: int | None,
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    backend: str | None,
    model: str | None,
) -> None:
    """The leader's validated answer (only while the lead is still its own)."""
    now = utcnow()
    await session.execute(
        update(_T)
        .where(_T.key == key, _T.leader_id == request_id)
        .values(
            status=READY, result=result, category=category, template_version=template_version,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total_tokens,
            llm_backend=backend, llm_model=model, expires_at=now + timedelta(seconds=ttl_seconds),
            lease_expires_at=now,
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip


async def give_up(session: AsyncSession, key: str, request_id: uuid.UUID) -> None:
    """A lead that failed: its row goes at once, so a waiting request takes over without waiting
    for the lease (the failure was this request's, not necessarily its followers')."""
    await session.execute(delete(_T).where(_T.key == key, _T.leader_id == request_id, _T.status == PENDING))


async def purge_expired(session: AsyncSession, before: datetime) -> int:
    stmt = delete(_T).where(_T.status == READY, _T.expires_at < before)
    return (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]
