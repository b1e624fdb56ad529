"""Dependencies shared by routes. The process's clients live on the runtime (service/runtime.py),
opened in the lifespan; it is the only thing on `app.state`.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a thread pool, which costs
more than everything else a status read does.

The unit of work of a route is the request-scoped session (`SessionDep`): the route and the
use-cases it calls only flush; the session is committed after the route returns, and the actions
registered with `service.db.unit_of_work.after_commit` run once the commit succeeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from service.callers.model import Caller
from service.config import Settings
from service.db import unit_of_work
from service.db.request_store import RequestStore
from service.errors import Forbidden
from service.runtime import Runtime
from service.usecases import audit


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.runtime.settings


async def get_store(request: Request) -> RequestStore:
    return request.app.state.runtime.store


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The route's unit of work: the only place a route's transaction is committed (after the
    route returned without error), followed by its after-commit actions. On an error nothing is
    committed and the actions are dropped."""
    async with request.app.state.runtime.sessions() as session:
        yield session
        await unit_of_work.commit(session)


_CALLER_KEY = "gigaoffice.caller"


async def get_caller(request: Request) -> Caller:
    """Who is calling (service/callers/auth.py): 401 without a valid key unless anonymous access is
    on. Authenticated once per request (kept in the ASGI scope) whichever dependency asks first.

    The dependencies below call this directly rather than through Depends(): every dependency
    FastAPI resolves costs a solve pass, which is measurable on a status read."""
    scope = request.scope
    caller: Caller | None = scope.get(_CALLER_KEY)
    if caller is None:
        authorization = api_key = None
        for name, value in scope["headers"]:  # raw ASGI headers: no Headers object per request
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
        client = scope.get("client")
        rt: Runtime = request.app.state.runtime
        caller = await rt.authenticator.authenticate(authorization, api_key, client[0] if client else None)
        scope[_CALLER_KEY] = caller
    return caller


async def get_owner_id(request: Request) -> str | None:
    """The caller's owner id: every read and write of requests is scoped by it. Never None for a
    caller of the API; None stays the repositories' "every owner" (the admin's service-wide view)."""
    return (await get_caller(request)).owner_id


async def require_admin(request: Request) -> Caller:
    caller = await get_caller(request)
    if not caller.is_admin:
        raise Forbidden("This route needs an admin API key.")
    return caller


async def require_metrics_reader(request: Request) -> None:
    """GET /metrics: service-wide figures, so an admin key unless METRICS_PUBLIC is on."""
    if not request.app.state.runtime.settings.metrics_public:
        await require_admin(request)


def owner_scope(caller: Caller, owner: str | None, route: str, session: AsyncSession) -> str | None:
    """The owner a route with `?owner=` reads: the caller's own unless an admin names another one
    ("*" = every owner). Cross-owner reads go into the audit log (committed with the route's
    session); a user key asking for them gets 403."""
    if owner is None or owner == caller.owner_id:
        return caller.owner_id
    if not caller.is_admin:
        raise Forbidden("Only admin keys may read another owner's figures.")
    logger.info("admin {} reads {} of owner {}", caller.key_id, route, owner)
    audit.record(session, caller.key_id, f"admin_read.{route}", "owner", owner)
    return None if owner == "*" else owner


@dataclass(frozen=True, slots=True)
class CallerRuntime:
    """The process's runtime and the caller, as ONE dependency for the hot routes."""

    rt: Runtime
    caller: Caller

    @property
    def owner_id(self) -> str:
        return self.caller.owner_id


async def get_caller_runtime(request: Request) -> CallerRuntime:
    return CallerRuntime(request.app.state.runtime, await get_caller(request))


async def enforce_rate_limit(request: Request, response: Response) -> dict[str, str]:
    """Counts the request against the caller's requests per minute (429 when over). The RateLimit-*
    headers go on the response; a route that builds its own Response must copy them (returned)."""
    headers: dict[str, str] = await request.app.state.runtime.rate_limiter.hit(await get_caller(request))
    response.headers.update(headers)
    return headers


@dataclass(frozen=True, slots=True)
class Admitted(CallerRuntime):
    """A submit that passed the rate limit and the budgets, with the RateLimit-* headers to send."""

    rate_limit_headers: dict[str, str]


async def admit_submit(request: Request, response: Response) -> Admitted:
    """Everything a new piece of LLM work must pass: the rate limit, then the token budgets on live
    spend (429 `budget_exceeded`)."""
    headers = await enforce_rate_limit(request, response)
    caller = await get_caller(request)
    await request.app.state.runtime.budgets.check_submit(caller)
    return Admitted(request.app.state.runtime, caller, headers)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the commit happens before the response is sent, so a 200 means committed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
StoreDep = Annotated[RequestStore, Depends(get_store)]
CallerDep = Annotated[Caller, Depends(get_caller)]
OwnerDep = Annotated[str | None, Depends(get_owner_id)]
AdminDep = Annotated[Caller, Depends(require_admin)]
CallerRuntimeDep = Annotated[CallerRuntime, Depends(get_caller_runtime)]
RateLimitDep = Annotated[dict[str, str], Depends(enforce_rate_limit)]
AdmissionDep = Annotated[Admitted, Depends(admit_submit)]
