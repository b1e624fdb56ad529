"""Dryrun answers for the categories beyond plain analysis, each schema-valid and derived from the input.

Kept apart from dryrun.py so the backend stays small: it dispatches on ChatRequest.context
("kind", "category") to these functions. Nothing here reads settings or the environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from service.pipeline import categories as cat
from service.pipeline.classify import ClassifierInput, classify_local
from service.pipeline.table import column_letters, parse_range

Rows = list[list[Any]]


def _rows(context: dict[str, Any]) -> Rows:
    data = context.get("input_data") or []
    return [list(row) for row in data if isinstance(row, list)]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_columns(rows: Rows) -> list[int]:
    width = max((len(r) for r in rows), default=0)
    body = rows[1:] if len(rows) > 1 else rows
    return [c for c in range(width) if any(c < len(r) and is_number(r[c]) for r in body)]


def _letter(context: dict[str, Any], column: int) -> str:
    return column_letters(parse_range(context.get("input_range")).first_col + column)


def _row_number(context: dict[str, Any], offset: int) -> int:
    return parse_range(context.get("input_range")).first_row + offset


def _beside(context: dict[str, Any], rows: Rows) -> str:
    """The cell just right of the input range: answers never overwrite the user's data."""
    width = max((len(r) for r in rows), default=0)
    return f"{_letter(context, width + 1)}{_row_number(context, 0)}"


def transformation(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context) or [[str(context.get("query_text", ""))[:200]]]
    cleaned = [[c.strip() if isinstance(c, str) else c for c in row] for row in rows]
    header, body = cleaned[:1], cleaned[1:]
    body.sort(key=lambda row: str(row[0]) if row else "")
    return {
        "values": header + body,
        "output_range": _beside(context, rows),
        "text": "Trimmed spaces and sorted the rows by the first column.",
    }


def generation(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context)
    if rows:
        return {
            "values": [*rows[:1], ["" for _ in rows[0]]],
            "output_range": _beside(context, rows),
            "text": "An empty row in the layout of the selected table.",
        }
    topic = str(context.get("query_text", "")).strip()[:60] or "Table"
    values = [["#", topic, "Amount"], [1, "", 0], [2, "", 0], [3, "", 0], ["Total", "", "=SUM(C2:C4)"]]
    return {"values": values, "output_range": "A1:C5", "text": "A template with a total formula."}


def search(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context)
    words = [w.lower() for w in str(context.get("query_text", "")).split() if len(w) > 3]
    found: Rows = [["Cell", *(rows[0] if rows else [])]]
    for offset, row in enumerate(rows[1:], start=1):
        if any(word in str(cell).lower() for cell in row for word in words):
            found.append([f"{_letter(context, 0)}{_row_number(context, offset)}", *row])
    if len(found) == 1:
        return {"values": [], "text": "Nothing in the range matches the request's words."}
    return {"values": found, "text": f"Found {len(found) - 1} matching row(s)."}


def formatting(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context)
    width = max((len(r) for r in rows), default=1)
    first = _row_number(context, 0)
    header = f"{_letter(context, 0)}{first}:{_letter(context, width - 1)}{first}"
    rules: list[dict[str, Any]] = [{"range": header, "bold": True, "background_color": "#D9E1F2"}]
    for column in _numeric_columns(rows):
        letter = _letter(context, column)
        rules.append(
            {
                "range": f"{letter}{first + 1}:{letter}{_row_number(context, max(len(rows) - 1, 1))}",
                "number_format": "#,##0.00",
                "horizontal_alignment": "right",
            }
        )
    return {"values": [], "formatting": rules, "text": "Bold header; numeric columns right-aligned."}


def chart(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context)
    numeric = _numeric_columns(rows)
    if len(rows) < 2 or not numeric:
        return {
            "chart_type": "column",
            "title": "Row lengths",
            "series": [{"name": "Cells", "values": [float(len(r)) for r in rows] or [0.0]}],
        }
    first, last = _row_number(context, 1), _row_number(context, len(rows) - 1)
    series = [
        {
            "name": str(rows[0][c]) if c < len(rows[0]) else f"Series {c + 1}",
            "values_range": f"{_letter(context, c)}{first}:{_letter(context, c)}{last}",
        }
        for c in numeric
    ]
    label_column = 0 if 0 not in numeric else None
    answer: dict[str, Any] = {
        "chart_type": "line" if len(rows) > 6 else "column",
        "title": str(context.get("query_text", ""))[:80] or "Chart",
        "series": series,
    }
    if label_column is not None:
        answer["categories_range"] = f"{_letter(context, 0)}{first}:{_letter(context, 0)}{last}"
    return answer


def histogram(context: dict[str, Any]) -> dict[str, Any]:
    rows = _rows(context)
    numeric = _numeric_columns(rows) or [0]
    column = numeric[-1]
    count = sum(1 for r in rows if column < len(r) and is_number(r[column]))
    bins = max(1, math.ceil(math.log2(count) + 1)) if count else 1  # Sturges' rule
    name = str(rows[0][column]) if rows and column < len(rows[0]) else "Value"
    return {
        "source_columns": [_letter(context, column)],
        "bins": bins,
        "title": f"Distribution of {name}",
        "x_axis_title": name,
        "y_axis_title": "Count",
    }


def text(context: dict[str, Any]) -> dict[str, Any]:
    query = str(context.get("query_text", "")).strip()[:300] or "(empty request)"
    return {"text": f"Dryrun answer to: {query}"}


def classification(context: dict[str, Any]) -> dict[str, Any]:
    decided = classify_local(ClassifierInput(query_text=str(context.get("query_text", ""))))
    return {"category": decided.category, "confidence": decided.confidence, "reason": "dryrun keyword match"}


ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    cat.SPREADSHEET_TRANSFORMATION: transformation,
    cat.SPREADSHEET_GENERATION: generation,
    cat.SPREADSHEET_SEARCH: search,
    cat.SPREADSHEET_FORMATTING: formatting,
    cat.DATA_CHART: chart,
    cat.DATA_HISTOGRAM: histogram,
    cat.SPREADSHEET_ASSISTANCE: text,
    cat.UNCERTAIN: text,
}


def chat_reply(messages: Any) -> str:
    """A plain-text reply to a caller's own conversation (request kind `chat`), derived from its
    last user turn only: stable for equal input and never anything but that input's shape."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    words = last_user.split()
    preview = " ".join(words[:12])
    return (
        f"Dry-run reply to a {len(messages)}-message conversation; "
        f"last user message ({len(words)} words): {preview}"
    )
