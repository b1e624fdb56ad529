"""The seed contract (GigaOffice plugin): /api/ai/* and /api/health as a thin layer over the v1 core.

Existing plugins call these paths with these shapes; they stay stable while /api/v1 evolves.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict

from service.api.deps import AdmissionDep, OwnerDep, StoreDep
from service.api.errors import CONFLICT_RESPONSE
from service.api.health import health_report
from service.api.requests import IdempotencyKeyHeader, processing_seconds
from service.errors import Conflict
from service.kinds import kind_of
from service.kinds.spreadsheet import SpreadsheetInput
from service.usecases import requests as service

router = APIRouter(prefix="/api", tags=["compatibility (seed contract)"])


class CompatProcessInput(SpreadsheetInput):
    """The seed's body: query_text, input_range, category, input_data (kind is implied)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


@router.post(
    "/ai/process",
    summary="Submit a spreadsheet request (seed contract)",
    responses=CONFLICT_RESPONSE,  # the idempotency key was used with a different body
)
async def ai_process(
    payload: CompatProcessInput,
    admitted: AdmissionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    rt = admitted.rt
    submitted = await service.submit(rt, payload, admitted.owner_id, idempotency_key)
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


@router.get("/ai/result/{request_id}", summary="Result of a request (seed contract)")
async def ai_result(request_id: uuid.UUID, store: StoreDep, owner_id: OwnerDep) -> dict[str, Any]:
    row = await service.get_request(store, request_id, owner_id)
    try:
        service.require_completed(row)
    except Conflict as exc:
        # The seed answered an unfinished request with success=false and its status; the v1 error
        # object rides along for clients that read that.
        return {
            "success": False,
            "request_id": str(row.id),
            "status": row.status,
            "message": exc.message,
            "error_message": row.error_message,
            "error": {"code": exc.code, "message": exc.message, "details": exc.details},
        }
    return {
        "success": True,
        "request_id": str(row.id),
        "status": row.status,
        "category": row.category,
        # answer_type, result (the 2-D array the plugin writes back), text, output_range, answer.
        **kind_of(row.kind).seed_result(row),
        "template_version": row.template_version,
        "tokens_used": row.total_tokens,
        "processing_time": processing_seconds(row),
    }


@router.get("/health", summary="Service health (seed contract)")
async def health(request: Request) -> dict[str, Any]:
    return await health_report(request.app)
