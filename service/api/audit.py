"""GET /api/v1/audit: the audit log, newest first (admin keys only). Keyset pagination: pass the
`next_before` of a page as `before` to get the next one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import AdminDep, SessionDep
from service.db.audit_models import AuditEntry
from service.schemas.fields import ColumnText
from service.usecases import audit

router = APIRouter(prefix="/api/v1", tags=["audit"])

Filter = Annotated[str, ColumnText(AuditEntry.action)] | None


def entry_out(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
    }


@router.get("/audit", summary="The audit log: who changed what, when, before and after")
async def read_audit(
    session: SessionDep,
    admin: AdminDep,
    actor: Filter = None,
    action: Filter = None,
    target_type: Filter = None,
    target_id: Filter = None,
    since: datetime | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = await audit.read(
        session,
        before_id=before,
        limit=limit,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
    )
    return {
        "data": [entry_out(row) for row in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }
