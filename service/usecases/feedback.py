"""Feedback use-cases: rate a request's answer (once per caller, replaceable) and read it back."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import feedback_repo as repo
from service.db.feedback_models import Feedback
from service.db.models import RequestStatus
from service.db.request_store import RequestStore
from service.errors import Conflict
from service.schemas.feedback import FeedbackIn
from service.usecases.requests import get_status


async def give(
    store: RequestStore,
    session: AsyncSession,
    request_id: uuid.UUID,
    owner_id: str | None,
    payload: FeedbackIn,
) -> tuple[Feedback, bool]:
    """Store the caller's rating of a finished request they can see. Returns (row, created)."""
    status = await get_status(store, request_id, owner_id)  # someone else's request: 404
    if status.status not in RequestStatus.FINAL:
        raise Conflict(
            f"The request is {status.status}; rate its answer once it is finished.",
            code="not_finished",
            details={"status": status.status},
        )
    values = payload.model_dump(include={"rating", "comment", "text_response"})
    try:
        return await repo.save(session, request_id, owner_id, values)
    except IntegrityError as exc:  # the same caller rated it at the same moment elsewhere
        raise Conflict("Feedback on this request is being saved concurrently; retry.") from exc


async def list_for_request(
    store: RequestStore, session: AsyncSession, request_id: uuid.UUID, owner_id: str | None
) -> list[Feedback]:
    await get_status(store, request_id, owner_id)
    return await repo.list_for_request(session, request_id, owner_id)
