"""Usage and cost (charts, CSV), batches (progress, cancel, downloads) and webhooks (deliveries, replay).
A user key sees its own; an admin every owner's."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from service.api.deps import SessionDep
from service.console.auth import ConsoleUser, checked_form, current_user
from service.console.charts import bar_chart
from service.console.parts import runtime
from service.console.web import CONSOLE_HEADERS, ConsoleRoute, plain_id, render, see_other
from service.db import batches_repo, console_repo
from service.db.batch_models import Batch, BatchStatus
from service.db.models import utcnow
from service.errors import NotFound, ValidationFailed
from service.usecases import batch_output
from service.usecases import batches as batches_usecase
from service.usecases import webhooks as webhooks_usecase
from service.usecases.usage import usage_report

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
UserDep = Annotated[ConsoleUser, Depends(current_user)]
PERIODS = (1, 7, 30, 90)


def _days(days: int) -> int:
    if days not in PERIODS:
        raise ValidationFailed(f"The period is one of {list(PERIODS)} days.")
    return days


def _cost(tokens: int, model: str | None, prices: dict[str, float]) -> float | None:
    price = prices.get(model or "")
    return round(tokens / 1000 * price, 4) if price is not None else None


# --- usage ---------------------------------------------------------------------------------------


@router.get("/usage")
async def usage_page(request: Request, user: UserDep, session: SessionDep, days: int = 7) -> Response:
    rt = runtime(request)
    settings = rt.settings
    now = utcnow()
    since = console_repo.day_start(now) - timedelta(days=_days(days) - 1)
    usage = await console_repo.usage_summary(session, user.owner_scope, since, now)
    own = (
        await usage_report(session, rt.budgets, settings, user.caller.owner_id) if not user.is_admin else None
    )
    prices = settings.llm_price_per_1k_tokens
    per_key = {owner or "—": list(figures) for owner, figures in usage.by_owner.items()}
    per_model = {model or "—": list(figures) for model, figures in usage.by_model.items()}
    cost_by_model = {model: _cost(t, model, prices) for model, (_, t) in per_model.items()}
    return render(
        request,
        "usage.html",
        page="usage",
        days=days,
        periods=PERIODS,
        chart=bar_chart(f"Tokens per day, last {days} days", list(usage.by_day.items()), " tokens"),
        per_key=sorted(per_key.items(), key=lambda item: -item[1][1]),
        per_model=sorted(per_model.items(), key=lambda item: -item[1][1]),
        cost_by_model=cost_by_model,
        total_cost=sum(c for c in cost_by_model.values() if c is not None) if prices else None,
        own=own,
    )


@router.get("/usage.csv")
async def usage_csv(request: Request, user: UserDep, session: SessionDep, days: int = 7) -> Response:
    prices = runtime(request).settings.llm_price_per_1k_tokens
    now = utcnow()
    since = console_repo.day_start(now) - timedelta(days=_days(days) - 1)
    lines = await console_repo.usage_by_day(session, user.owner_scope, since, now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["day", "owner", "model", "requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"]
    )
    for line in lines:
        cost = _cost(line.total_tokens, line.model, prices)
        writer.writerow([
            line.day, line.owner_id or "", line.model or "", line.requests, line.prompt_tokens,
            line.completion_tokens, line.total_tokens, "" if cost is None else cost,
        ])  # fmt: skip
    headers = {**CONSOLE_HEADERS, "Content-Disposition": f'attachment; filename="usage-{days}d.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# --- batches -------------------------------------------------------------------------------------


def _batch_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.removeprefix("batch_"))
    except ValueError:
        raise NotFound(f"No batch with id {value[:64]}.") from None


async def _visible_batch(session: Any, user: ConsoleUser, batch_id: str) -> Batch:
    batch = await batches_repo.get_batch(session, _batch_id(batch_id))
    if batch is None or (user.owner_scope is not None and batch.owner_id != user.owner_scope):
        raise NotFound(f"No batch with id {batch_id[:64]}.")
    return batch


@router.get("/batches")
async def batches_page(request: Request, user: UserDep, session: SessionDep) -> Response:
    rows = await console_repo.recent_batches(session, user.owner_scope, 100)
    views = [await batches_usecase.view(session, batch) for batch in rows]
    return render(request, "batches.html", page="batches", views=views)


@router.get("/batches/{batch_id}")
async def batch_page(request: Request, batch_id: str, user: UserDep, session: SessionDep) -> Response:
    view = await batches_usecase.view(session, await _visible_batch(session, user, batch_id))
    return render(
        request,
        "batch.html",
        page="batches",
        view=view,
        can_cancel=view.batch.status in (BatchStatus.IN_PROGRESS, BatchStatus.VALIDATING),
        message=request.query_params.get("done"),
    )


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str, user: UserDep, session: SessionDep) -> Response:
    await checked_form(request)
    batch = await _visible_batch(session, user, batch_id)
    await batches_usecase.cancel(session, runtime(request).publisher, batch.id, batch.owner_id)
    return see_other(f"/console/batches/{batch.id}?done=cancelled")


@router.get("/batches/{batch_id}/{which}.jsonl")
async def batch_lines(request: Request, batch_id: str, which: str, user: UserDep) -> Response:
    """Every line's outcome ("results") or only the lines that did not complete ("errors")."""
    if which not in ("results", "errors"):
        raise NotFound("Download results.jsonl or errors.jsonl.")
    sessions = runtime(request).sessions
    async with sessions() as session:  # reads only, here and while streaming
        batch = await _visible_batch(session, user, batch_id)

    async def lines() -> AsyncIterator[bytes]:
        async with sessions() as session:
            if batches_usecase.is_native(batch):
                async for line in batch_output.native_lines(session, batch):
                    if which == "results" or (b'"error"' in line[:4096] and b'"result"' not in line[:4096]):
                        yield line
            else:
                kind = "output" if which == "results" else "error"
                async for line in batch_output.openai_file_lines(session, batch, kind):
                    yield line

    headers = {
        **CONSOLE_HEADERS,
        "Content-Disposition": f'attachment; filename="batch_{batch.id.hex}-{which}.jsonl"',
    }
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)


# --- webhooks ------------------------------------------------------------------------------------


def _endpoint_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No webhook endpoint {value[:64]}.") from None


@router.get("/webhooks")
async def webhooks_page(request: Request, user: UserDep, session: SessionDep) -> Response:
    endpoints = await webhooks_usecase.list_endpoints(session, user.owner_scope)
    return render(request, "webhooks.html", page="webhooks", endpoints=endpoints)


@router.get("/webhooks/{endpoint_id}")
async def webhook_page(request: Request, endpoint_id: str, user: UserDep, session: SessionDep) -> Response:
    endpoint_uuid = _endpoint_id(endpoint_id)
    deliveries = await webhooks_usecase.delivery_log(session, endpoint_uuid, user.owner_scope, 100)
    endpoints = await webhooks_usecase.list_endpoints(session, user.owner_scope)
    endpoint = next((e for e in endpoints if e.id == endpoint_uuid), None)
    return render(
        request,
        "webhook.html",
        page="webhooks",
        endpoint=endpoint,
        endpoint_id=endpoint_uuid,
        deliveries=deliveries,
        message=request.query_params.get("done"),
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
async def replay_delivery(request: Request, delivery_id: str, user: UserDep, session: SessionDep) -> Response:
    await checked_form(request)
    delivery = await webhooks_usecase.replay(
        session, plain_id(delivery_id, "webhook delivery"), user.owner_scope
    )
    endpoint_id = delivery.endpoint_id
    return see_other(f"/console/webhooks/{endpoint_id}?done=replayed")
