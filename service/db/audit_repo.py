"""All SQL about the audit log. Append and read only: there is deliberately no update and no
delete here (tests/test_audit.py checks this module's source)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.audit_models import AuditEntry
from service.db.models import utcnow


def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Adds an entry to the session (written with the unit of work's own changes, or not at all)."""
    row = AuditEntry(
        at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )
    session.add(row)
    return row


async def page(
    session: AsyncSession,
    *,
    before_id: int | None,
    limit: int,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
) -> Sequence[AuditEntry]:
    """Newest first, keyset-paginated on the id (`before_id` is the last id of the previous page)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if target_type is not None:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return (await session.execute(stmt)).scalars().all()
