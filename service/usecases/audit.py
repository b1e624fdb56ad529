"""The audit log's use-cases: what each administrative change writes, and the admin's reading.

An entry is added to the session of the change it records, so it is committed with the change or
not at all. Actors: the caller's key id, CLI for an operator's command, SYSTEM for a background job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.db import audit_repo
from service.db.audit_models import AuditEntry
from service.db.key_models import ApiKey

CLI = "cli"
SYSTEM = "system"

KEY_FIELDS = (
    "name",
    "role",
    "requests_per_minute",
    "tokens_per_minute",
    "daily_tokens",
    "monthly_tokens",
    "retention_days",
    "revoked_at",
)


def key_snapshot(row: ApiKey) -> dict[str, Any]:
    """What an entry keeps of a key: its settings, never its digest."""
    snap: dict[str, Any] = {"id": row.id, "prefix": row.prefix}
    for name in KEY_FIELDS:
        value = getattr(row, name, None)
        snap[name] = value.isoformat() if isinstance(value, datetime) else value
    return snap


def record(
    session: AsyncSession,
    actor: str | None,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    return audit_repo.append(
        session,
        actor=actor or "anonymous",
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


async def read(
    session: AsyncSession, *, before_id: int | None, limit: int, **filters: Any
) -> Sequence[AuditEntry]:
    return await audit_repo.page(session, before_id=before_id, limit=limit, **filters)
