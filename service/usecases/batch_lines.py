"""Reading and validating batch input: JSONL lines (OpenAI form) or native items, one at a time.

Every line is checked exactly like a single request (schema, size limits, category) and becomes
the values of a request row; problems are collected per line in OpenAI's error shape
(`{"code", "line", "message", "param"}`), so a bad file fails as a whole with precise reasons and
nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from service.callers.model import Limits
from service.config import Settings
from service.errors import AppError
from service.kinds import KINDS, REQUEST_INPUT
from service.kinds.base import KindInput
from service.kinds.chat import chat_input_from_openai
from service.usecases.model_policy import ModelNotAllowed, check_model
from service.usecases.requests import check_limits, row_values

CHAT_COMPLETIONS = "/v1/chat/completions"
NATIVE_REQUESTS = "/api/v1/requests"
ENDPOINTS = (CHAT_COMPLETIONS, NATIVE_REQUESTS)
MAX_CUSTOM_ID = 256
MAX_REPORTED_ERRORS = 1000
# A line longer than this is refused without being parsed (and without holding more of it).
MAX_LINE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ValidLine:
    line: int
    custom_id: str
    values: dict[str, Any]  # the request row's input columns (kind, category, input, options)


@dataclass
class ParsedBatch:
    lines: list[ValidLine] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    too_large: bool = False

    def error(self, line: int | None, code: str, message: str, param: str | None = None) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "line": line, "message": message, "param": param})


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in error.get("loc", ()) if part not in KINDS)  # not the union's tag
    return loc or "body", str(error.get("msg", "invalid")).removeprefix("Value error, ")


class LineChecker:
    """Turns decoded lines into ValidLines or per-line errors; remembers custom_ids for duplicates."""

    def __init__(self, settings: Settings, endpoint: str, limits: Limits | None = None) -> None:
        self._settings = settings
        self._limits = limits  # the submitting key's (its allowed models)
        self._endpoint = endpoint
        self._seen: set[str] = set()
        self.parsed = ParsedBatch()
        self._count = 0

    def add_openai(self, number: int, item: Any) -> None:
        """A line of an OpenAI batch input file: {"custom_id", "method", "url", "body"}."""
        if not isinstance(item, dict):
            self.parsed.error(number, "invalid_request", "The line is not a JSON object.")
            return
        url = item.get("url")
        if url not in ENDPOINTS:
            self.parsed.error(
                number, "invalid_url", f"url must be one of {list(ENDPOINTS)}, got {url!r}.", "url"
            )
            return
        if url != self._endpoint:
            self.parsed.error(
                number,
                "mismatched_endpoint",
                f"url {url} differs from the batch endpoint {self._endpoint}.",
                "url",
            )
            return
        if item.get("method", "POST") != "POST":
            self.parsed.error(number, "invalid_method", "method must be POST.", "method")
            return
        unknown = set(item) - {"custom_id", "method", "url", "body"}
        if unknown:
            self.parsed.error(
                number, "invalid_request", f"unknown field {sorted(unknown)[0]!r}.", sorted(unknown)[0]
            )
            return
        self._add(number, item.get("custom_id"), item.get("body"), url)

    def add_native(self, number: int, item: Any) -> None:
        """A native item: a v1 request body with its custom_id."""
        if not isinstance(item, dict):
            self.parsed.error(number, "invalid_request", "The line is not a JSON object.")
            return
        body = dict(item)
        self._add(number, body.pop("custom_id", None), body, NATIVE_REQUESTS)

    def _add(self, number: int, custom_id: Any, body: Any, url: str) -> None:
        self._count += 1
        if self._count > self._settings.batch_max_lines:
            self.parsed.too_large = True
            return
        if not isinstance(custom_id, str) or not custom_id.strip() or len(custom_id) > MAX_CUSTOM_ID:
            message = f"custom_id must be a non-empty string of at most {MAX_CUSTOM_ID} characters."
            self.parsed.error(number, "invalid_custom_id", message, "custom_id")
            return
        if custom_id in self._seen:
            self.parsed.error(
                number, "duplicate_custom_id", f"custom_id {custom_id!r} is used twice.", "custom_id"
            )
            return
        self._seen.add(custom_id)
        if not isinstance(body, dict):
            self.parsed.error(number, "invalid_body", "body must be a JSON object.", "body")
            return
        try:
            payload: KindInput = (
                chat_input_from_openai(body)
                if url == CHAT_COMPLETIONS
                else REQUEST_INPUT.validate_python(body)
            )
            if payload.webhook is not None or payload.idempotency_key is not None:
                raise ValueError(
                    "webhook and idempotency_key are per request; a batch line cannot carry them"
                )
            check_limits(payload, self._settings)
            check_model(payload, self._settings, self._limits)
            values = row_values(payload)
        except ValidationError as exc:
            loc, msg = _first_problem(exc)
            self.parsed.error(number, "invalid_body", f"body.{loc}: {msg}", f"body.{loc}")
            return
        except ModelNotAllowed as exc:
            self.parsed.error(number, exc.code, f"body.model: {exc.message}", "body.model")
            return
        except AppError as exc:
            detail = exc.details[0] if isinstance(exc.details, list) and exc.details else None
            loc = detail["loc"] if isinstance(detail, dict) else "body"
            msg = f"{detail['msg']}" if isinstance(detail, dict) else exc.message
            self.parsed.error(number, "invalid_body", f"body.{loc}: {msg}", f"body.{loc}")
            return
        except ValueError as exc:
            self.parsed.error(number, "invalid_body", f"body.{exc}", "body")
            return
        self.parsed.lines.append(ValidLine(number, custom_id, values))

    def finish(self) -> ParsedBatch:
        if self.parsed.too_large:
            self.parsed.error(
                None,
                "too_many_lines",
                f"A batch holds at most {self._settings.batch_max_lines} lines, got {self._count}.",
            )
        elif self._count == 0 and not self.parsed.error_count:
            self.parsed.error(None, "empty_file", "The input holds no request lines.")
        return self.parsed


async def check_jsonl(
    chunks: AsyncIterator[bytes], checker: LineChecker, *, native: bool = False
) -> ParsedBatch:
    """Splits a byte stream into lines (any chunking), decodes each and hands it to the checker.
    Holds at most one line (≤ MAX_LINE_BYTES) in memory at a time."""
    number = 0
    pending = b""
    skipping = False  # inside an over-long line: drop bytes until its end

    def take(raw: bytes) -> None:
        if not raw.strip():
            return  # blank lines (a trailing newline, say) are not requests
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            checker.parsed.error(number, "invalid_json_line", f"The line is not valid JSON ({exc}).")
            return
        (checker.add_native if native else checker.add_openai)(number, item)

    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            if skipping:
                skipping = False
                continue
            take(raw)
        if len(pending) > MAX_LINE_BYTES:
            if not skipping:
                message = f"The line is longer than {MAX_LINE_BYTES} bytes."
                checker.parsed.error(number + 1, "line_too_long", message)
            skipping, pending = True, b""
    if pending and not skipping:
        number += 1
        take(pending)
    return checker.finish()


def check_items(items: Iterable[Any], checker: LineChecker) -> ParsedBatch:
    for number, item in enumerate(items, start=1):
        checker.add_native(number, item)
    return checker.finish()
