"""Requests: a filtered, keyset-paginated listing, and one request's page with its actions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from service.api.deps import SessionDep
from service.console.auth import ConsoleUser, checked_form, current_user
from service.console.parts import runtime
from service.console.web import ConsoleRoute, plain_id, render, see_other
from service.db import console_repo, feedback_repo
from service.db import requests_repo as repo
from service.db.models import RequestStatus
from service.errors import NotFound, ValidationFailed
from service.kinds import KINDS
from service.pipeline.categories import ACTIVE_CATEGORIES
from service.usecases import requests as requests_usecase
from service.usecases.requeue import requeue

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
UserDep = Annotated[ConsoleUser, Depends(current_user)]
PAGE_SIZE = 50
STATUSES = (*RequestStatus.ACTIVE, *RequestStatus.FINAL)


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise ValidationFailed(f"Unknown {name} '{value[:40]}'.")
    return value


def _moment(value: str | None, name: str) -> datetime | None:
    """A datetime-local field's value ("2026-12-03T10:15"), read as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value[:32])
    except ValueError:
        raise ValidationFailed(f"'{name}' is not a date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(value: str, what: str = "request") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No {what} with id {value[:64]}.") from None


@router.get("/requests")
async def list_requests(
    request: Request,
    user: UserDep,
    session: SessionDep,
    status: str | None = None,
    kind: str | None = None,
    category: str | None = None,
    owner: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: str | None = None,
) -> Response:
    owner = plain_id(owner.strip(), "owner") if owner and owner.strip() else None
    where = console_repo.RequestFilter(
        # A user key sees its own rows whatever it asks for; an admin may narrow to one owner.
        owner_id=owner if user.is_admin else user.caller.owner_id,
        status=_choice(status, STATUSES, "status"),
        kind=_choice(kind, tuple(KINDS), "kind"),
        category=_choice(category, tuple(ACTIVE_CATEGORIES), "category"),
        since=_moment(since, "since"),
        until=_moment(until, "until"),
    )
    cursor = await console_repo.request_keyset(session, _uuid(before)) if before else None
    if before and cursor is None:
        raise NotFound("The page to continue from is gone; start again.")
    rows = await console_repo.list_requests(session, where, cursor, PAGE_SIZE + 1)
    query = {
        "status": status or "",
        "kind": kind or "",
        "category": category or "",
        "owner": owner or "",
        "since": since or "",
        "until": until or "",
    }
    return render(
        request,
        "requests.html",
        page="requests",
        rows=rows[:PAGE_SIZE],
        more=str(rows[PAGE_SIZE - 1].id) if len(rows) > PAGE_SIZE else None,
        query=query,
        statuses=STATUSES,
        kinds=tuple(KINDS),
        categories=ACTIVE_CATEGORIES,
    )


def _timeline(row: Any) -> list[dict[str, Any]]:
    steps = [{"status": "queued", "at": row.created_at, "note": "submitted"}]
    if row.started_at is not None:
        steps.append({"status": "processing", "at": row.started_at, "note": f"claim {row.attempts}"})
    if row.status in RequestStatus.FINAL:
        note = f"{row.error_code}: {row.error_message}" if row.error_code else ""
        steps.append({"status": row.status, "at": row.finished_at, "note": note})
    elif row.status == RequestStatus.QUEUED and row.attempts:
        steps.append({"status": "queued", "at": row.updated_at, "note": "queued again"})
    return steps


@router.get("/requests/{request_id}")
async def request_page(request: Request, request_id: str, user: UserDep, session: SessionDep) -> Response:
    settings = runtime(request).settings
    row = await repo.get_request(session, _uuid(request_id))
    if row is None or (user.owner_scope is not None and row.owner_id != user.owner_scope):
        raise NotFound(f"No request with id {request_id}.")
    feedback = await feedback_repo.list_for_request(session, row.id, user.owner_scope)
    price = settings.llm_price_per_1k_tokens.get(row.llm_model or "")
    calls = (row.transcript or {}).get("calls", []) if isinstance(row.transcript, dict) else []
    return render(
        request,
        "request.html",
        page="requests",
        row=row,
        timeline=_timeline(row),
        calls=calls,
        feedback=feedback,
        cost=round(row.total_tokens / 1000 * price, 6) if price is not None else None,
        can_cancel=row.status in RequestStatus.ACTIVE,
        can_requeue=row.status == RequestStatus.FAILED,
        message=request.query_params.get("done"),
    )


@router.post("/requests/{request_id}/cancel")
async def cancel_request(request: Request, request_id: str, user: UserDep, session: SessionDep) -> Response:
    await checked_form(request)
    await requests_usecase.cancel(session, runtime(request).publisher, _uuid(request_id), user.owner_scope)
    return see_other(f"/console/requests/{request_id}?done=cancelled")


@router.post("/requests/{request_id}/requeue")
async def requeue_request(request: Request, request_id: str, user: UserDep, session: SessionDep) -> Response:
    await checked_form(request)
    rt = runtime(request)
    await requeue(session, rt.publisher, rt.settings, _uuid(request_id), user.owner_scope)
    return see_other(f"/console/requests/{request_id}?done=requeued")
