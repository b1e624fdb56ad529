"""GET /api/v1/requests/{id}/report: the SmartFlowAI-style Markdown report of a process analysis."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from service.api.deps import OwnerDep, StoreDep
from service.api.errors import CONFLICT_RESPONSE
from service.errors import NotFound
from service.kinds import kind_of
from service.schemas.fields import LanguageCode
from service.usecases import requests as request_service

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])


@router.get(
    "/{request_id}/report",
    summary="Markdown report of a completed process analysis",
    # No response_class: errors stay documented as the JSON envelope; the report itself is Markdown.
    responses={
        200: {"description": "The report", "content": {"text/markdown": {"schema": {"type": "string"}}}},
        **CONFLICT_RESPONSE,
    },
)
async def get_report(
    request_id: uuid.UUID,
    store: StoreDep,
    owner_id: OwnerDep,
    language: LanguageCode | None = Query(None, description="Default: the request's language"),
) -> PlainTextResponse:
    row = request_service.require_completed(await request_service.get_request(store, request_id, owner_id))
    markdown = kind_of(row.kind).report(row, language)
    if markdown is None:
        raise NotFound("reports exist only for process-analysis requests")
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")
