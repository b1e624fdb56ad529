"""Loguru set-up, once per process, redirection of the standard library's loggers into it, and a
bound on repeated lines.

A dependency that stays away makes clients (aiokafka above all) log the same failure many times a
second. Every condition — a stdlib logger's message template, or a key our code names — is logged at
most once per LOG_REPEAT_INTERVAL_SECONDS; the next line after the interval says how many were
suppressed meanwhile.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from loguru import logger

from service.config import Settings


class RepeatLimiter:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, suppressed so far)

    def admit(self, key: str) -> int | None:
        """None: suppress this line. Otherwise log it, noting the returned count of suppressed ones."""
        now = time.monotonic()
        started, suppressed = self._windows.get(key, (float("-inf"), 0))
        if now - started < self.interval:
            self._windows[key] = (started, suppressed + 1)
            return None
        if len(self._windows) > 10_000:  # keys come from message templates, but stay bounded anyway
            self._windows.clear()
        self._windows[key] = (now, 0)
        return suppressed


_limiter = RepeatLimiter(10.0)


def _suffix(suppressed: int) -> str:
    return f" [{suppressed} more like this in the last {_limiter.interval:g} s]" if suppressed else ""


class _Throttled:
    """`throttled(key).warning(...)`: like `logger`, at most one line per key and interval."""

    def __init__(self, key: str) -> None:
        self._key = key

    def _log(self, level: str, message: str, args: Any, kwargs: Any, exception: bool = False) -> None:
        suppressed = _limiter.admit(self._key)
        if suppressed is not None:
            log = logger.opt(depth=2, exception=exception)
            log.log(level, message + _suffix(suppressed), *args, **kwargs)

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("INFO", message, args, kwargs)

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("WARNING", message, args, kwargs)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("ERROR", message, args, kwargs)

    def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("ERROR", message, args, kwargs, exception=True)


def throttled(key: str) -> _Throttled:
    return _Throttled(key)


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # The template (before arguments) names the condition: "Unable connect to node with id %s".
        suppressed = _limiter.admit(f"{record.name}:{record.levelno}:{record.msg}")
        if suppressed is None:
            return
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        message = record.getMessage() + _suffix(suppressed)
        logger.opt(depth=6, exception=record.exc_info).log(level, "{}", message)


def configure_logging(settings: Settings) -> None:
    _limiter.interval = settings.log_repeat_interval_seconds
    logger.remove()
    logger.add(
        sys.stderr,
        level=settings.log_level.upper(),
        serialize=settings.log_json,
        backtrace=False,
        diagnose=False,
    )  # diagnose=False: never print local variables (secrets)
    if settings.log_file is not None:
        # The seed's logs/gigaoffice.log with rotation; enqueue=True: several API worker processes
        # may share the file, and writes leave the event loop.
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            settings.log_file,
            level=settings.log_level.upper(),
            serialize=settings.log_json,
            rotation=settings.log_rotation,
            retention=_retention(settings.log_retention),
            encoding="utf-8",
            enqueue=True,
            backtrace=False,
            diagnose=False,
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _retention(value: str) -> str | int:
    """loguru reads an int as "keep this many files" and a string as an age ("14 days")."""
    return int(value) if value.strip().isdigit() else value
