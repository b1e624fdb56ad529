"""The one place errors become HTTP responses: {"error": {"code", "message", "details"}}.

Also the OpenAPI side of it: every operation documents the error statuses it can answer with the
envelope's schema (`ERROR_RESPONSES`, applied to every router in app.py), so clients and
schemathesis see the same contract the handlers keep.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import monitoring
from service.db.errors import DATABASE_EXCEPTIONS, classify
from service.errors import AppError
from service.kinds import KINDS
from service.schemas.openai_errors import openai_error

RETRY_AFTER_SECONDS = "5"


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


# Statuses any operation may answer with. A router adds its own (409, 401/403 ...) via `responses=`.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("A body that cannot be read at all (e.g. not UTF-8)"),
    401: _documented("No valid API key (see `WWW-Authenticate`)"),
    403: _documented("The key may not use this route (admin routes)"),
    404: _documented("Not found: unknown id or path (someone else's resource looks the same)"),
    422: _documented("Invalid input: every problem with its location in `details`"),
    429: _documented("A rate limit or token budget ran out; see `Retry-After`"),
    500: _documented("Internal error (logged; no internals in the message)"),
    503: _documented("A dependency (database, broker) is unavailable; see `Retry-After`"),
}
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {409: _documented("Conflicts with the resource's state")}


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


class EnvelopeResponse(JSONResponse):
    """An error body that always renders: a message quoting the caller's bad text (a lone
    surrogate, say) comes out as a JSON escape instead of failing to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str).encode(
            "utf-8", "backslashreplace"
        )


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return EnvelopeResponse(
        {"error": {"code": code, "message": message, "details": details}}, status_code=status, headers=headers
    )


_KEPT_HEADERS = ("retry-after", "www-authenticate", "x-should-retry", "location")


def for_surface(request: Request, response: JSONResponse) -> JSONResponse:
    """Our envelope everywhere, except on the OpenAI-compatible /v1 surface: there, OpenAI's own
    shape {"error": {"message", "type", "param", "code"}} (its SDK reads it)."""
    if not request.url.path.startswith("/v1/"):
        return response
    error = json.loads(bytes(response.body))["error"]
    status = response.status_code
    details = error.get("details")
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    body = openai_error(status, error["code"], error["message"], first.get("loc"))
    headers = {name: value for name, value in response.headers.items() if name in _KEPT_HEADERS}
    return EnvelopeResponse(body, status_code=status, headers=headers or None)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        # Drop the leading "body" and the union tag pydantic adds for discriminated unions.
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        # Drop the union tag and validator names pydantic puts in front of the field path.
        while loc and (loc[0] in KINDS or "[" in loc[0]):
            loc = loc[1:]
        # Union members and type tags inside the path ("str", "function-before[...]") say nothing.
        loc = [part for part in loc if "[" not in part and part not in ("str", "int", "float", "bool")]
        message = str(error.get("msg", "invalid"))
        details.append({"loc": ".".join(loc) or "body", "msg": message.removeprefix("Value error, ")})
    return details


def render_app_error(exc: AppError, cause: BaseException | None = None) -> JSONResponse:
    if exc.status_code == 504:  # an answer that is late (the work goes on), not a fault of ours
        logger.info("{}: {}", exc.code, exc.message)
    elif exc.status_code >= 500:
        reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        logger.error("{}: {}{}", exc.code, exc.message, reason)
    if exc.status_code == 429:
        monitoring.REFUSALS.labels(exc.code).inc()
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.status_code == 503 else {}
    if exc.headers:
        headers.update(exc.headers)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, headers or None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return for_surface(request, render_app_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": "body", "msg": "invalid"}
        return for_surface(
            request, error_response(422, "validation_error", f"{first['loc']}: {first['msg']}", details)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        return for_surface(request, error_response(exc.status_code, code, str(exc.detail), None, headers))

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        mapped = classify(exc)
        if mapped is None:
            return for_surface(request, _internal(exc))
        if mapped.status_code < 500:  # the edge should have refused it: worth a look, not an alarm
            logger.warning("database refused a value the validation let through: {}", type(exc).__name__)
        return for_surface(request, render_app_error(mapped, exc))

    for exception_type in DATABASE_EXCEPTIONS:
        app.add_exception_handler(exception_type, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return for_surface(request, _internal(exc))


def _internal(exc: Exception) -> JSONResponse:
    logger.opt(exception=exc).error("unhandled error")
    return error_response(500, "internal_error", "An internal error occurred.")
