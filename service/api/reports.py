"""GET /api/v1/requests/{id}/report: the SmartFlowAI-style report of a process analysis, as Markdown
or (`?format=pdf`) as a PDF with embedded Cyrillic fonts (service/pipeline/report_pdf.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from service.api.deps import OwnerDep, StoreDep
from service.api.errors import CONFLICT_RESPONSE
from service.errors import NotFound
from service.kinds import kind_of
from service.schemas.fields import LanguageCode
from service.usecases import requests as request_service

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])


@router.get(
    "/{request_id}/report",
    summary="Report of a completed process analysis (Markdown or PDF)",
    # No response_class: errors stay documented as the JSON envelope; the report is Markdown or PDF.
    responses={
        200: {
            "description": "The report",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **CONFLICT_RESPONSE,
    },
)
async def get_report(
    request_id: uuid.UUID,
    store: StoreDep,
    owner_id: OwnerDep,
    language: LanguageCode | None = Query(None, description="Default: the request's language"),
    format: Literal["markdown", "pdf"] = Query("markdown", description="markdown, or pdf to download"),
) -> Response:
    row = request_service.require_completed(await request_service.get_request(store, request_id, owner_id))
    kind = kind_of(row.kind)
    if format == "pdf":
        # Laying out and subsetting the font is CPU work of a few hundred ms: off the event loop.
        pdf = await asyncio.to_thread(kind.report_pdf, row, language)
        if pdf is None:
            raise NotFound("reports exist only for process-analysis requests")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="report-{request_id}.pdf"'},
        )
    markdown = kind.report(row, language)
    if markdown is None:
        raise NotFound("reports exist only for process-analysis requests")
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")
