"""Versioned request routes: thin — validate, resolve dependencies, call one service function."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel

from service.api.deps import ClientsDep, OwnerDep, SessionDep, StoreDep
from service.db.records import RequestRecord, StatusRecord
from service.schemas.requests import (
    SEED_EXAMPLE,
    ErrorInfo,
    Links,
    RequestInput,
    RequestResultOut,
    RequestStatusOut,
    SubmitResponse,
    UsageInfo,
)
from service.services import requests as service

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])

_EXAMPLES = {
    "spreadsheet": {
        "summary": "Spreadsheet range with a question",
        "value": {"kind": "spreadsheet", **SEED_EXAMPLE},
    },
    "process_analysis": {
        "summary": "Business process to analyse",
        "value": {
            "kind": "process_analysis",
            "title": "Invoice approval",
            "description": "Invoices arrive by email, are typed into Excel by hand and approved "
            "by two managers over email.",
            "company_size": "50-200",
        },
    },
    "chat": {
        "summary": "A conversation sent to the backend as is (no template)",
        "value": {
            "kind": "chat",
            "messages": [
                {"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": "How do I freeze the first row of a sheet?"},
            ],
            "max_tokens": 200,
        },
    },
}


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise an already-valid model once, in Rust: the hottest routes skip FastAPI's second
    validation of their return value (response_model still documents the shape)."""
    return Response(model.__pydantic_serializer__.to_json(model), status_code, media_type="application/json")


def links(request_id: uuid.UUID) -> Links:
    base = f"/api/v1/requests/{request_id}"
    return Links(status=base, result=f"{base}/result")


def status_out(row: RequestRecord | StatusRecord) -> RequestStatusOut:
    return RequestStatusOut(
        id=row.id,
        kind=row.kind,
        status=row.status,
        category=row.category,
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=ErrorInfo(code=row.error_code, message=row.error_message or "") if row.error_code else None,
        links=links(row.id),
    )


def usage_out(row: RequestRecord) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.total_tokens,
        estimated=row.tokens_estimated,
        llm_calls=row.llm_calls,
        llm_latency_ms=row.llm_latency_ms,
        backend=row.llm_backend,
        model=row.llm_model,
    )


def processing_seconds(row: RequestRecord) -> float | None:
    if row.started_at and row.finished_at:
        return round((row.finished_at - row.started_at).total_seconds(), 3)
    return None


@router.post(
    "",
    status_code=202,
    response_model=SubmitResponse,
    summary="Submit an analysis request",
    responses={200: {"model": SubmitResponse, "description": "An earlier submit with this idempotency key"}},
)
async def submit_request(
    clients: ClientsDep,
    owner_id: OwnerDep,
    payload: Annotated[RequestInput, Body(openapi_examples=_EXAMPLES)],
) -> Response:
    submitted = await service.submit(
        clients.store, clients.sessions, clients.publisher, clients.settings, payload, owner_id
    )
    body = SubmitResponse(
        id=submitted.id,
        kind=submitted.kind,
        status=submitted.status,
        created_at=submitted.created_at,
        links=links(submitted.id),
    )
    response = model_response(body, 202 if submitted.created else 200)
    response.headers["Location"] = body.links.status
    return response


@router.get("/{request_id}", response_model=RequestStatusOut, summary="Status of a request")
async def get_status(
    request_id: uuid.UUID,
    clients: ClientsDep,
    owner_id: OwnerDep,
    wait: float = Query(0, ge=0, description="Long-poll: wait up to this many seconds for a final status."),
) -> Response:
    if wait > 0:
        wait = min(wait, clients.settings.long_poll_max_seconds)
        row = await service.wait_for_final(clients.store, request_id, owner_id, wait)
    else:
        row = await service.get_status(clients.store, request_id, owner_id)
    return model_response(status_out(row))


@router.get(
    "/{request_id}/result",
    response_model=RequestResultOut,
    summary="Result of a completed request",
    responses={409: {"description": "Not completed (yet): the current status is in details"}},
)
async def get_result(request_id: uuid.UUID, store: StoreDep, owner_id: OwnerDep) -> RequestResultOut:
    row = service.require_completed(await service.get_request(store, request_id, owner_id))
    return RequestResultOut(
        id=row.id,
        kind=row.kind,
        status=row.status,
        category=row.category,
        result=row.result,
        template_version=row.template_version,
        usage=usage_out(row),
        processing_time=processing_seconds(row),
    )


@router.post(
    "/{request_id}/cancel", response_model=RequestStatusOut, summary="Cancel a queued or running request"
)
async def cancel_request(request_id: uuid.UUID, session: SessionDep, owner_id: OwnerDep) -> RequestStatusOut:
    return status_out(await service.cancel(session, request_id, owner_id))
