"""All SQL about feedback. Callers own the session and decide when to commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.feedback_models import Feedback
from service.db.models import AnalysisRequest, utcnow


def _of_owner(owner_id: str | None) -> Any:
    # Anonymous feedback is stored with a NULL owner; the unique index treats NULL as ''.
    return Feedback.owner_id.is_(None) if owner_id is None else Feedback.owner_id == owner_id


async def find(session: AsyncSession, request_id: uuid.UUID, owner_id: str | None) -> Feedback | None:
    stmt = select(Feedback).where(Feedback.request_id == request_id, _of_owner(owner_id))
    return (await session.execute(stmt)).scalar_one_or_none()


async def save(
    session: AsyncSession,
    request_id: uuid.UUID,
    owner_id: str | None,
    values: dict[str, Any],
) -> tuple[Feedback, bool]:
    """Insert the caller's rating of a request, or replace the one they gave before.
    Returns the row and whether it is new."""
    now = utcnow()
    row = await find(session, request_id, owner_id)
    if row is None:
        row = Feedback(
            id=uuid.uuid4(),
            request_id=request_id,
            owner_id=owner_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(row)
        await session.flush()
        return row, True
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now
    await session.flush()
    return row, False


async def list_for_request(
    session: AsyncSession, request_id: uuid.UUID, owner_id: str | None
) -> list[Feedback]:
    stmt = select(Feedback).where(Feedback.request_id == request_id).order_by(Feedback.created_at)
    if owner_id is not None:
        stmt = stmt.where(Feedback.owner_id == owner_id)
    return list((await session.execute(stmt)).scalars())


async def rating_counts(
    session: AsyncSession, owner_id: str | None, since: datetime
) -> list[tuple[str | None, int | None, str, int]]:
    """(category, template_version, rating, count) of feedback given since `since`."""
    r = AnalysisRequest
    stmt = (
        select(r.category, r.template_version, Feedback.rating, func.count())
        .join(r, r.id == Feedback.request_id)
        .where(Feedback.updated_at >= since)
        .group_by(r.category, r.template_version, Feedback.rating)
    )
    if owner_id is not None:
        stmt = stmt.where(Feedback.owner_id == owner_id)
    return [(c, v, rating, n) for c, v, rating, n in (await session.execute(stmt)).all()]
