"""The seed contract (GigaOffice plugin): /api/ai/* and /api/health as a thin layer over the v1 core.

Existing plugins call these paths with these shapes; they stay stable while /api/v1 evolves.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict

from service.api.deps import ClientsDep, OwnerDep, StoreDep
from service.api.errors import CONFLICT_RESPONSE
from service.api.health import health_report
from service.api.requests import processing_seconds
from service.schemas.requests import SpreadsheetInput
from service.services import requests as service

router = APIRouter(prefix="/api", tags=["compatibility (seed contract)"])


class CompatProcessInput(SpreadsheetInput):
    """The seed's body: query_text, input_range, category, input_data (kind is implied)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


@router.post("/ai/process", summary="Submit a spreadsheet request (seed contract)")
async def ai_process(
    payload: CompatProcessInput,
    clients: ClientsDep,
    owner_id: OwnerDep,
) -> dict[str, Any]:
    submitted = await service.submit(
        clients.store, clients.sessions, clients.publisher, clients.settings, payload, owner_id
    )
    return {
        "success": True,
        "request_id": str(submitted.id),
        "status": submitted.status,
        "message": "Запрос принят в обработку",
    }


@router.get("/ai/status/{request_id}", summary="Status of a request (seed contract)")
async def ai_status(request_id: uuid.UUID, store: StoreDep, owner_id: OwnerDep) -> dict[str, Any]:
    row = await service.get_status(store, request_id, owner_id)
    return {
        "success": True,
        "request_id": str(row.id),
        "status": row.status,
        "category": row.category,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "error_message": row.error_message,
    }


@router.get(
    "/ai/result/{request_id}",
    summary="Result of a completed request (seed contract)",
    responses=CONFLICT_RESPONSE,
)
async def ai_result(request_id: uuid.UUID, store: StoreDep, owner_id: OwnerDep) -> dict[str, Any]:
    row = service.require_completed(await service.get_request(store, request_id, owner_id))
    result = row.result if isinstance(row.result, dict) else {}
    return {
        "success": True,
        "request_id": str(row.id),
        "status": row.status,
        # The plugin writes this 2-D array back into the sheet.
        "result": result.get("values", []),
        "text": result.get("text"),
        "output_range": result.get("output_range"),
        "tokens_used": row.total_tokens,
        "processing_time": processing_seconds(row),
    }


@router.get("/health", summary="Service health (seed contract)")
async def health(request: Request) -> dict[str, Any]:
    return await health_report(request.app)
