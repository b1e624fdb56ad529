"""Loguru set-up, once per process, and redirection of the standard library's loggers into it."""

from __future__ import annotations

import logging
import sys

from loguru import logger

from service.config import Settings


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings) -> None:
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
