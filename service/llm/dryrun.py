"""The dryrun backend: a real backend that answers without a model.

Answers are deterministic and derived only from the request's own input (ChatRequest.context): for
a spreadsheet, per-column statistics of the numeric columns; for process analysis, a schema-valid
analysis. It never echoes settings, environment variables or prompt internals.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import orjson

from service.config import Settings
from service.llm import dryrun_answers
from service.llm.base import (
    ChatRequest,
    ChatResponse,
    Overloaded,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)

Number = int | float


def _round(value: float) -> Number:
    rounded = round(value, 4)
    return int(rounded) if float(rounded).is_integer() else rounded


def column_statistics(rows: list[list[Any]]) -> list[list[Any]]:
    """Count/sum/mean/min/max of each column holding numbers; a header row (all text) names them."""
    if not rows or not rows[0]:
        return [["Column", "Count"], ["(empty range)", 0]]
    has_header = all(isinstance(cell, str) for cell in rows[0] if cell is not None) and len(rows) > 1
    header = rows[0] if has_header else [f"Column {index + 1}" for index in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    table: list[list[Any]] = [["Column", "Count", "Sum", "Mean", "Min", "Max"]]
    for index, name in enumerate(header):
        numbers = [row[index] for row in body if index < len(row) and dryrun_answers.is_number(row[index])]
        if numbers:
            total = sum(numbers)
            table.append(
                [
                    str(name),
                    len(numbers),
                    _round(total),
                    _round(total / len(numbers)),
                    _round(min(numbers)),
                    _round(max(numbers)),
                ]
            )
    if len(table) == 1:  # no numeric column: describe the text columns instead
        table = [["Column", "Non-empty", "Distinct"]]
        for index, name in enumerate(header):
            values = [row[index] for row in body if index < len(row) and row[index] not in (None, "")]
            table.append([str(name), len(values), len({str(value) for value in values})])
    return table


def spreadsheet_answer(context: dict[str, Any]) -> dict[str, Any]:
    rows = context.get("input_data") or []
    if rows:
        values = column_statistics(rows)
        text = f"Statistics of {len(values) - 1} column(s) of the input range."
    else:
        values = [["Query"], [str(context.get("query_text", ""))[:200]]]
        text = "No input data was given; the query is echoed as a one-cell table."
    return {"values": values, "text": text}


def process_analysis_answer(context: dict[str, Any]) -> dict[str, Any]:
    description = str(context.get("description", ""))
    title = str(context.get("title", "")) or "Process"
    words = len(description.split())
    # Longer, more manual descriptions score as more automatable: a stable, input-derived number.
    manual_markers = sum(
        description.lower().count(m) for m in ("manual", "excel", "email", "вручную", "почт")
    )
    score = max(1, min(10, 3 + words // 40 + manual_markers))
    hours = float(min(160, 4 + words // 5 + 6 * manual_markers))
    return {
        "score": score,
        "problem": f"'{title[:80]}' relies on repetitive manual steps that slow it down.",
        "solution": {
            "description": "Automate data hand-offs and notifications with a workflow engine.",
            "tools": ["n8n", "Python"] if score >= 6 else ["Zapier"],
        },
        "savings": {"hours_per_month": hours, "description": "Estimated from the described volume."},
        "implementation": [
            "Map the current steps and their inputs",
            "Automate the most frequent hand-off first",
            "Measure time saved after one month",
        ],
    }


class DryrunBackend:
    name = "dryrun"

    def __init__(self, settings: Settings) -> None:
        self._latency = settings.dryrun_latency_ms / 1000
        self._failure_rate = settings.dryrun_failure_rate

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "backend": self.name, "detail": "no external service"}

    def _fails(self, request: ChatRequest) -> bool:
        # Deterministic per input, so a test can reason about which requests fail.
        if self._failure_rate <= 0:
            return False
        digest = hashlib.sha256(request.prompt_text.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self._failure_rate

    def answer_for(self, context: dict[str, Any]) -> dict[str, Any]:
        if context.get("kind") == "process_analysis":
            return process_analysis_answer(context)
        if context.get("kind") == "classification":
            return dryrun_answers.classification(context)
        per_category = dryrun_answers.ANSWERS.get(str(context.get("category")))
        return per_category(context) if per_category else spreadsheet_answer(context)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._fails(request):
            raise Overloaded("dryrun backend: simulated failure")
        if request.messages:
            text = dryrun_answers.chat_reply(request.messages)
        else:
            text = orjson.dumps(self.answer_for(request.context)).decode()
        prompt_tokens = estimate_prompt_tokens(request)
        completion_tokens = estimate_tokens(text)
        return ChatResponse(
            text=text,
            usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, estimated=True),
            model="dryrun",
            latency_ms=(time.perf_counter() - started) * 1000,
            backend=self.name,
        )
