"""An owner's data (docs/lifecycle.md): export as JSONL (the caller's own, or any owner's for an
admin key) and erasure (admin keys). Both are written to the audit log."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from service.api.deps import AdminDep, CallerDep, RuntimeDep, SessionDep
from service.db.models import AnalysisRequest
from service.schemas.fields import ColumnText
from service.usecases import audit, owner_data

router = APIRouter(prefix="/api/v1", tags=["owners"])

OwnerId = Annotated[str, ColumnText(AnalysisRequest.owner_id, min_length=1), Path()]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_JSONL: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object per line"}
}


def _stream(rt: Any, owner_id: str) -> StreamingResponse:
    return StreamingResponse(
        owner_data.export_lines(rt.sessions, owner_id),
        media_type="application/x-ndjson",
        # The header is latin-1: an owner id of any other characters must not break it.
        headers={"Content-Disposition": f'attachment; filename="export-{_SAFE.sub("_", owner_id)}.jsonl"'},
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses=_JSONL,
    summary="Everything of yours (requests, results, batches, files, feedback, webhooks) as JSONL",
)
async def export_own(rt: RuntimeDep, caller: CallerDep) -> StreamingResponse:
    return _stream(rt, caller.owner_id)


@router.get(
    "/owners/{owner_id}/export",
    response_class=StreamingResponse,
    responses=_JSONL,
    summary="Everything of one owner as JSONL (admin keys)",
)
async def export_owner(
    owner_id: OwnerId, rt: RuntimeDep, session: SessionDep, admin: AdminDep
) -> StreamingResponse:
    # Recorded before the stream starts: the session commits before the response is sent.
    audit.record(session, admin.key_id, "owner.exported", "owner", owner_id)
    return _stream(rt, owner_id)


@router.delete("/owners/{owner_id}", summary="Erase everything of one owner (admin keys; idempotent)")
async def erase_owner(owner_id: OwnerId, rt: RuntimeDep, admin: AdminDep) -> dict[str, Any]:
    # Its own units of work, chunk by chunk (service/usecases/owner_data.py), then the tombstone.
    deleted = await owner_data.erase(rt.sessions, owner_id, admin.key_id or audit.CLI)
    rt.authenticator.forget(owner_id)  # the owner's key, if it was one, stops working here at once
    return {"owner": owner_id, "erased": True, "deleted": deleted}
