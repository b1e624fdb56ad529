"""One error hierarchy. Every error the API returns is an AppError rendered in one place (api/errors.py)."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    # Extra response headers (WWW-Authenticate, Retry-After, RateLimit-*).
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code
        if headers is not None:
            self.headers = headers


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="gigaoffice"'}  # noqa: RUF012


class TooManyRequests(AppError):
    """A rate limit or a token budget; the headers say when to come back."""

    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


class ConfigurationError(AppError):
    """Raised at start-up when settings cannot work (missing file, missing credential)."""

    status_code = 500
    code = "configuration_error"


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached or dropped the connection; the pools reconnect by themselves."""

    code = "database_unavailable"
