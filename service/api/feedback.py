"""Feedback on answers: the seed's POST /api/v1/feedback and the per-request resource."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from service.api.deps import OwnerDep, SessionDep, StoreDep
from service.db.feedback_models import Feedback
from service.schemas.feedback import FeedbackIn, FeedbackOut, SeedFeedbackIn
from service.usecases import feedback as service

router = APIRouter(prefix="/api/v1", tags=["feedback"])


def feedback_out(row: Feedback) -> FeedbackOut:
    return FeedbackOut(
        id=row.id, request_id=row.request_id, rating=row.rating, comment=row.comment,
        text_response=row.text_response, created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


async def _give(
    store: StoreDep, session: SessionDep, request_id: uuid.UUID, owner_id: str | None, payload: FeedbackIn
) -> Response:
    row, created = await service.give(store, session, request_id, owner_id, payload)
    body = feedback_out(row)
    return Response(body.model_dump_json(), 201 if created else 200, media_type="application/json")


@router.post(
    "/requests/{request_id}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    summary="Rate a finished request's answer (again: replaces your earlier rating)",
    responses={200: {"model": FeedbackOut, "description": "Your earlier rating, replaced"}},
)
async def give_feedback(
    request_id: uuid.UUID, payload: FeedbackIn, store: StoreDep, session: SessionDep, owner_id: OwnerDep
) -> Response:
    return await _give(store, session, request_id, owner_id, payload)


@router.get(
    "/requests/{request_id}/feedback", response_model=list[FeedbackOut], summary="Your rating of a request"
)
async def list_feedback(
    request_id: uuid.UUID, store: StoreDep, session: SessionDep, owner_id: OwnerDep
) -> list[FeedbackOut]:
    return [feedback_out(r) for r in await service.list_for_request(store, session, request_id, owner_id)]


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackOut,
    summary="Rate a request's answer (the seed's body: ai_request_id, rating, comment, text_response)",
    responses={200: {"model": FeedbackOut, "description": "Your earlier rating, replaced"}},
)
async def give_feedback_seed(
    payload: SeedFeedbackIn, store: StoreDep, session: SessionDep, owner_id: OwnerDep
) -> Response:
    return await _give(store, session, payload.ai_request_id, owner_id, payload)
