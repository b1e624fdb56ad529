"""How the console answers: Jinja2 pages with its own headers, and errors as pages rather than JSON.

Console routes use `ConsoleRoute`: an AppError (404 for another owner's id, 403, 409, 429 …) becomes
an HTML page with the same status, and a missing session sends a page view to the sign-in form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from service.console.auth import CSRF_FIELD, USER_SCOPE_KEY, SignInRequired
from service.errors import AppError, NotFound

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Pages come only from this origin: no inline script, no third-party anything, never framed.
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
}

NAV = (
    ("overview", "/console", "Overview", False),
    ("requests", "/console/requests", "Requests", False),
    ("keys", "/console/keys", "Keys", True),
    ("usage", "/console/usage", "Usage and cost", False),
    ("batches", "/console/batches", "Batches", False),
    ("prompts", "/console/prompts", "Prompts", False),
    ("webhooks", "/console/webhooks", "Webhooks", False),
)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    user = request.scope.get(USER_SCOPE_KEY)
    context.setdefault("page", "")
    response = templates.TemplateResponse(
        request,
        name,
        {"user": user, "nav": NAV, "csrf_field": CSRF_FIELD, **context},
        status_code=status_code,
        headers=CONSOLE_HEADERS,
    )
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=CONSOLE_HEADERS)


def _error_page(request: Request, exc: AppError) -> Response:
    if isinstance(exc, SignInRequired) and request.method == "GET":
        return see_other(f"/console/signin?next={quote(request.url.path)}")
    response = render(
        request, "error.html", status_code=exc.status_code, message=exc.message, code=exc.code, page=""
    )
    for name, value in (exc.headers or {}).items():
        if name.lower() == "retry-after":
            response.headers[name] = value
    return response


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return _error_page(request, exc)
            except RequestValidationError:
                bad = AppError("The page was asked for with invalid parameters.", code="validation_error")
                bad.status_code = 422
                return _error_page(request, bad)

        return handle


# --- template helpers ------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def age(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return seconds_text(seconds)


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def number(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", " ")
    return f"{int(value):,}".replace(",", " ")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def pretty(value: Any) -> str:
    """JSON for people: indented, non-ASCII text as itself (escaped by the template like any text)."""
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


templates.env.filters.update(
    when=when, age=age, seconds=seconds_text, number=number, percent=percent, pretty=pretty
)


_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def plain_id(value: str, what: str) -> str:
    """An id from a path or query (key, owner, delivery, category): letters, digits and -_.: only,
    so nothing unstorable (a NUL, say) reaches the database. Anything else names nothing: 404."""
    if not _TOKEN.fullmatch(value):
        raise NotFound(f"No {what} '{value[:40]}'.")
    return value
