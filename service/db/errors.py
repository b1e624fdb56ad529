"""What a database exception means for the caller, whichever driver path raised it.

The API reaches PostgreSQL through SQLAlchemy (which wraps asyncpg's errors) and through raw asyncpg
pools on the hot paths (request_store, worker_store); SQLite through aiosqlite. All of them end up
here, so "the database is unreachable" is a 503 with Retry-After wherever it happens, and a value
the database refuses is the caller's 422 even when the edge validation missed it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc

from service.errors import AppError, DatabaseUnavailable, ServiceUnavailable, ValidationFailed

# Exceptions of the drivers themselves that mean "no usable connection" (asyncpg's InterfaceError
# covers "connection is closed" and InternalClientError a connection left mid-operation).
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.OperatorInterventionError,  # pg_terminate_backend, admin shutdown, crash recovery
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # SQLAlchemy's pool had no connection to give
    ConnectionError,
    TimeoutError,
    OSError,
)
# Values PostgreSQL refuses (SQLSTATE class 22: too long, out of range, bad encoding, NUL).
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # server side, SQLSTATE class 22
    asyncpg.exceptions._base.DataError,  # client side: a value asyncpg cannot encode
    UnicodeEncodeError,
    OverflowError,
)
# The exception types whose handler consults classify(); anything else falls to the 500 handler.
DATABASE_EXCEPTIONS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sqlite3.OperationalError,
    ConnectionError,
    TimeoutError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped, and its causes (a few levels are enough)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)


def is_connection_error(exc: BaseException) -> bool:
    for item in _chain(exc):
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, sqlite3.OperationalError) and "locked" in str(item):
            return True  # SQLite's busy timeout ran out: try again later
        if isinstance(item, _DATA_ERRORS):
            return False
        if isinstance(item, _CONNECTION_ERRORS):
            return True
    return False


_DATABASE_TYPES = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sqlite3.Error,
)


def _from_database(exc: BaseException) -> bool:
    return any(isinstance(item, _DATABASE_TYPES) for item in _chain(exc))


def classify(exc: BaseException) -> AppError | None:
    """The AppError a database exception stands for, or None (a bug: 500). A bare timeout or
    connection error from elsewhere is a 503 too, without blaming the database."""
    if is_connection_error(exc):
        if _from_database(exc):
            return DatabaseUnavailable("The database is unavailable; try again shortly.")
        return ServiceUnavailable("A dependency did not answer; try again shortly.")
    for item in _chain(exc):
        if isinstance(item, _DATA_ERRORS):
            return ValidationFailed(
                "A value cannot be stored.", details=[{"loc": "body", "msg": _data_message(item)}]
            )
    return None


def _data_message(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.PostgresError):
        # The server's message names the type and limit (e.g. "value too long for type character
        # varying(128)") and never echoes the value.
        return str(exc.args[0]) if exc.args else type(exc).__name__
    if isinstance(exc, UnicodeEncodeError):
        return "text that is not valid Unicode"
    return "a number out of range"
