"""The one place errors become HTTP responses: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import monitoring
from service.errors import AppError


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}}, status_code=status, headers=headers
    )


# OpenAI's error `type` for our status codes, on the /v1 surface (its SDK reads these).
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                 429: "rate_limit_error"}  # fmt: skip


def _render(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Our envelope everywhere, except on the OpenAI-compatible /v1 surface: OpenAI's own shape."""
    if request.url.path.startswith("/v1/"):
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        param = (
            details[0].get("loc")
            if isinstance(details, list) and details and isinstance(details[0], dict)
            else None
        )
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        return JSONResponse(body, status_code=status, headers=headers)
    return error_response(status, code, message, details, headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        # Drop the leading "body" and the union tag pydantic adds for discriminated unions.
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        # Drop the union tag and validator names pydantic puts in front of the field path.
        while loc and (loc[0] in ("spreadsheet", "process_analysis", "chat") or "[" in loc[0]):
            loc = loc[1:]
        message = str(error.get("msg", "invalid"))
        details.append({"loc": ".".join(loc) or "body", "msg": message.removeprefix("Value error, ")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.error("{}: {}", exc.code, exc.message)
        if exc.status_code == 429:
            monitoring.REFUSALS.labels(exc.code).inc()
        headers = {"Retry-After": "5"} if exc.status_code == 503 else {}
        if exc.headers:
            headers.update(exc.headers)
        return _render(request, exc.status_code, exc.code, exc.message, exc.details, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": "body", "msg": "invalid"}
        return _render(request, 422, "validation_error", f"{first['loc']}: {first['msg']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _render(request, exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error("unhandled error")
        return _render(request, 500, "internal_error", "An internal error occurred.")
