"""Sign-in, sign-out and the overview: what is queued and how old, what finishes, what fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from loguru import logger
from starlette.responses import Response

from service.api.deps import SessionDep
from service.console.auth import (
    SIGNIN_COOKIE,
    ConsoleUser,
    check_signin_token,
    checked_form,
    client_address,
    current_user,
    end_session,
    set_cookie,
    signin_token,
    start_session,
)
from service.console.charts import sparkline
from service.console.parts import parts, runtime
from service.console.web import ConsoleRoute, render, see_other
from service.db import console_repo
from service.db.models import utcnow
from service.errors import TooManyRequests, Unauthorized

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
UserDep = Annotated[ConsoleUser, Depends(current_user)]


def _safe_next(target: str | None) -> str:
    # Only a console path: never an open redirect to another site.
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


@router.get("/signin")
async def signin_form(request: Request, next: str | None = None) -> Response:
    token = signin_token(request)
    response = render(request, "signin.html", signin_token=token, next=_safe_next(next), error=None)
    set_cookie(request, response, SIGNIN_COOKIE, token, 3600)
    return response


@router.post("/signin")
async def signin(request: Request, session: SessionDep) -> Response:
    rt = runtime(request)
    throttle = parts(request).throttle
    address = client_address(request)
    form = await request.form()
    target = _safe_next(str(form.get("next") or ""))
    check_signin_token(request, form)
    key = form.get("api_key")
    try:
        await throttle.check(address)
        if not isinstance(key, str) or not key.strip() or len(key) > 200:
            raise Unauthorized("Enter an API key.", code="missing_api_key")
        caller = await rt.authenticator.authenticate(None, key.strip(), address)
    except (Unauthorized, TooManyRequests) as exc:
        if isinstance(exc, Unauthorized):
            await throttle.failed(address)
            logger.info("console sign-in refused from {}", address)
        token = signin_token(request)
        response = render(
            request,
            "signin.html",
            status_code=exc.status_code,
            signin_token=token,
            next=target,
            error=exc.message,
        )
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = "60"
        set_cookie(request, response, SIGNIN_COOKIE, token, 3600)
        return response
    if caller.key_id is None:  # anonymous access is for the API, not for the console
        raise Unauthorized("Sign in with an API key.")
    response = see_other(target)
    await start_session(request, response, session, rt.settings, caller)
    return response


@router.post("/signout")
async def signout(request: Request, user: UserDep, session: SessionDep) -> Response:
    await checked_form(request)
    response = see_other("/console/signin")
    await end_session(response, session, user)
    return response


# --- the overview --------------------------------------------------------------------------------


async def overview_figures(request: Request, user: ConsoleUser) -> dict[str, Any]:
    rt = runtime(request)
    settings = rt.settings
    now = utcnow()
    async with rt.sessions() as session:  # reads only
        lanes = await console_repo.lane_figures(session)
        hour = await console_repo.finished_since(session, now - timedelta(hours=1), user.owner_scope)
    broker = await parts(request).broker.get() if user.is_admin else None
    lag = None
    if broker is not None:
        lag = {
            "interactive": broker.get(settings.kafka_topic_requests),
            "batch": broker.get(settings.kafka_topic_requests_batch),
        }
    backend = rt.llm
    health = await rt.llm_health()
    per_minute = [n for _, n in hour.per_minute]
    return {
        "now": now,
        "lanes": lanes,
        "lag": lag,
        "dlq": broker.get(settings.kafka_topic_dead_letter) if broker is not None else None,
        "hour": hour,
        "per_minute_now": per_minute[-1] if per_minute else 0,
        "per_minute_mean": round(hour.completed / 60, 1),
        "spark": sparkline("Completions per minute over the last hour", per_minute),
        "health": health,
        "backend": backend.state() if hasattr(backend, "state") else {},
        "broker_up": rt.monitor.is_up,
    }


@router.get("")
async def overview(request: Request, user: UserDep) -> Response:
    figures = await overview_figures(request, user)
    return render(request, "overview.html", page="overview", **figures)


@router.get("/overview/live")
async def overview_live(request: Request, user: UserDep) -> Response:
    """The overview's figures alone (an HTML fragment): the page's script swaps them in every few
    seconds, so the page stays usable without script and live with it."""
    figures = await overview_figures(request, user)
    return render(request, "_overview_figures.html", page="overview", **figures)
