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
from service.pipeline.answer import SCHEMA_KIND
from service.pipeline.categories import resolve_category
from service.schemas.requests import SpreadsheetInput
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
    answer = row.result if isinstance(row.result, dict) else {}
    return {
        "success": True,
        "request_id": str(row.id),
        "status": row.status,
        "category": row.category,
        # What the answer is: table, chart, histogram, text or process_analysis.
        "answer_type": SCHEMA_KIND.get(resolve_category(row.category or "") or ""),
        # The plugin writes this 2-D array back into the sheet (for charts: the inline series).
        "result": seed_values(answer),
        "text": answer.get("text"),
        "output_range": answer.get("output_range"),
        # The whole structured answer: chart and histogram specifications, formatting rules.
        "answer": answer,
        "template_version": row.template_version,
        "tokens_used": row.total_tokens,
        "processing_time": processing_seconds(row),
    }


def seed_values(answer: dict[str, Any]) -> list[list[Any]]:
    """The answer as a 2-D array where it has one: a table's values, or a chart's inline series
    (a header of series names, then one row per point)."""
    values = answer.get("values")
    if isinstance(values, list) and values:
        return values
    series = answer.get("series")
    if (
        isinstance(series, list)
        and series
        and all(isinstance(s, dict) and isinstance(s.get("values"), list) for s in series)
    ):
        names = [s.get("name") or f"Series {number}" for number, s in enumerate(series, start=1)]
        length = max(len(s["values"]) for s in series)
        points = [[s["values"][i] if i < len(s["values"]) else None for s in series] for i in range(length)]
        return [names, *points]
    return []


@router.get("/health", summary="Service health (seed contract)")
async def health(request: Request) -> dict[str, Any]:
    return await health_report(request.app)
