"""Dryrun answers for the categories beyond plain analysis, each schema-valid and derived from the input.

Kept apart from dryrun.py so the backend stays small: the spreadsheet kind
(service/kinds/spreadsheet.py) picks one of these by the request's category. Every answer speaks
the query's language and follows the wishes it states (dryrun_intents.py): a pie chart when a pie
is asked for, duplicates removed when that is asked for. Nothing here reads settings or the environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from service.kinds.dryrun_intents import (
    chart_type,
    colour,
    comparison,
    first_number,
    language,
    mentioned_column,
    say,
    wants,
)
from service.pipeline import categories as cat
from service.pipeline.table import column_letters, parse_range

Rows = list[list[Any]]
MAX_GENERATED_ROWS = 50
MAX_FORMAT_RULES = 200


def rows_of(context: dict[str, Any]) -> Rows:
    data = context.get("input_data") or []
    return [list(row) for row in data if isinstance(row, list)]


def query_of(context: dict[str, Any]) -> str:
    return str(context.get("query_text", ""))


def language_of(context: dict[str, Any]) -> str:
    return language(query_of(context), rows_of(context))


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_columns(rows: Rows) -> list[int]:
    width = max((len(r) for r in rows), default=0)
    body = rows[1:] if len(rows) > 1 else rows
    return [c for c in range(width) if any(c < len(r) and is_number(r[c]) for r in body)]


def _letter(context: dict[str, Any], column: int) -> str:
    return column_letters(parse_range(context.get("input_range")).first_col + column)


def _row_number(context: dict[str, Any], offset: int) -> int:
    return parse_range(context.get("input_range")).first_row + offset


def _cell(context: dict[str, Any], column: int, offset: int) -> str:
    return f"{_letter(context, column)}{_row_number(context, offset)}"


def _beside(context: dict[str, Any], rows: Rows) -> str:
    """The cell just right of the input range: answers never overwrite the user's data."""
    width = max((len(r) for r in rows), default=0)
    return _cell(context, width + 1, 0)


def _sort_key(column: int) -> Callable[[list[Any]], tuple[int, Any]]:
    def key(row: list[Any]) -> tuple[int, Any]:
        value = row[column] if column < len(row) else None
        if is_number(value):
            return (0, value)
        return (1, str(value).lower()) if value not in (None, "") else (2, "")

    return key


def transformation(context: dict[str, Any]) -> dict[str, Any]:
    query, lang = query_of(context), language_of(context)
    rows = rows_of(context) or [[query[:200]]]
    cleaned = [[c.strip() if isinstance(c, str) else c for c in row] for row in rows]
    header, body = cleaned[:1], cleaned[1:]
    done = [say(lang, "trimmed")]
    if wants(query, "transpose"):
        width = max(len(row) for row in cleaned)
        values = [[row[i] if i < len(row) else None for row in cleaned] for i in range(width)]
        return {
            "values": values,
            "output_range": _beside(context, rows),
            "text": _sentence([*done, say(lang, "transposed")]),
        }
    if wants(query, "empty") and wants(query, "remove"):
        kept = [row for row in body if any(cell not in (None, "") for cell in row)]
        done.append(say(lang, "removed_empty", n=len(body) - len(kept)))
        body = kept
    if wants(query, "duplicates") and (wants(query, "remove") or not wants(query, "sort")):
        seen: set[str] = set()
        unique = []
        for row in body:
            marker = repr(row)
            if marker not in seen:
                seen.add(marker)
                unique.append(row)
        done.append(say(lang, "removed_duplicates", n=len(body) - len(unique)))
        body = unique
    for case, change in (("upper", str.upper), ("lower", str.lower)):
        if wants(query, case):
            body = [[change(c) if isinstance(c, str) else c for c in row] for row in body]
            done.append(say(lang, f"{case}_done"))
    if wants(query, "sort") or len(done) == 1:  # sorting is also what an unspecific request gets
        width = max((len(r) for r in cleaned), default=1)
        column = mentioned_column(query, header[0] if header else [], range(width)) or 0
        descending = wants(query, "descending")
        body.sort(key=_sort_key(column), reverse=descending)
        name = str(header[0][column]) if header and column < len(header[0]) else _letter(context, column)
        order = say(lang, "descending_word" if descending else "ascending_word")
        done.append(say(lang, "sorted", name=name, order=order))
    return {"values": header + body, "output_range": _beside(context, rows), "text": _sentence(done)}


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def generation(context: dict[str, Any]) -> dict[str, Any]:
    rows, query, lang = rows_of(context), query_of(context), language_of(context)
    if rows:
        return {
            "values": [*rows[:1], ["" for _ in rows[0]]],
            "output_range": _beside(context, rows),
            "text": say(lang, "layout_row"),
        }
    count = max(1, min(first_number(query) or 3, MAX_GENERATED_ROWS))
    topic = query.strip()[:60] or say(lang, "value")
    body: Rows = [[n, "", 0] for n in range(1, count + 1)]
    total = [say(lang, "total"), "", f"=SUM(C2:C{count + 1})"]
    values = [["№" if lang == "ru" else "#", topic, say(lang, "amount")], *body, total]
    return {"values": values, "output_range": f"A1:C{count + 2}", "text": say(lang, "template", n=count)}


def _compares(value: float, op: str, limit: float) -> bool:
    return value > limit if op == ">" else value < limit


def _matches(
    row: list[Any], words: list[str], condition: tuple[str, float] | None, columns: list[int]
) -> bool:
    if condition is not None:
        op, limit = condition
        return any(c < len(row) and is_number(row[c]) and _compares(row[c], op, limit) for c in columns)
    return any(word in str(cell).lower() for cell in row for word in words)


def search(context: dict[str, Any]) -> dict[str, Any]:
    rows, query, lang = rows_of(context), query_of(context), language_of(context)
    words = [w.strip("«»\"'.,?!:;").lower() for w in query.split() if len(w) > 3]
    condition = comparison(query)
    numeric = numeric_columns(rows)
    columns = [c] if (c := mentioned_column(query, rows[0] if rows else [], numeric)) is not None else numeric
    found: Rows = [[say(lang, "cell"), *(rows[0] if rows else [])]]
    for offset, row in enumerate(rows[1:], start=1):
        if _matches(row, words, condition, columns):
            found.append([_cell(context, 0, offset), *row])
    if len(found) == 1:
        return {"values": [], "text": say(lang, "not_found")}
    return {"values": found, "text": say(lang, "found", n=len(found) - 1)}


def _number_format(query: str, lang: str) -> str | None:
    if wants(query, "percent"):
        return "0.00%"
    if wants(query, "currency"):
        return '#,##0.00 "₽"' if lang == "ru" else "$#,##0.00"
    if wants(query, "thousands"):
        return "#,##0"
    return None


def formatting(context: dict[str, Any]) -> dict[str, Any]:
    rows, query, lang = rows_of(context), query_of(context), language_of(context)
    width = max((len(r) for r in rows), default=1)
    last_offset = max(len(rows) - 1, 1)
    numeric = numeric_columns(rows)
    fill = colour(query)
    rules: list[dict[str, Any]] = []
    done: list[str] = []

    condition = ("<", 0.0) if wants(query, "negative") else comparison(query)
    if condition is not None:
        op, limit = condition
        for offset, row in enumerate(rows[1:], start=1):
            for column in numeric:
                value = row[column] if column < len(row) else None
                if isinstance(value, int | float) and _compares(value, op, limit):
                    rules.append(
                        {"range": _cell(context, column, offset), "background_color": fill or "#FFC7CE"}
                    )
        rules = rules[:MAX_FORMAT_RULES]
        done.append(
            say(lang, "fmt_negative")
            if wants(query, "negative")
            else say(lang, "fmt_threshold", op=op, limit=f"{limit:g}")
        )

    number_format = _number_format(query, lang)
    asked_header = wants(query, "header") or wants(query, "bold")
    # An unspecific request ("оформи красиво") gets the house style: bold header, numbers right.
    unspecific = not (
        condition or number_format or asked_header or wants(query, "italic") or wants(query, "center")
    )
    if asked_header or unspecific:
        header_range = f"{_cell(context, 0, 0)}:{_cell(context, width - 1, 0)}"
        header_fill = fill if fill and condition is None else "#D9E1F2"
        rules.insert(0, {"range": header_range, "bold": True, "background_color": header_fill})
        done.insert(0, say(lang, "fmt_header"))
    body_range = f"{_cell(context, 0, 1)}:{_cell(context, width - 1, last_offset)}"
    if wants(query, "italic"):
        rules.append({"range": body_range, "italic": True})
        done.append(say(lang, "fmt_italic"))
    if wants(query, "center"):
        rules.append({"range": body_range, "horizontal_alignment": "center"})
        done.append(say(lang, "fmt_center"))
    if number_format or unspecific:
        for column in numeric:
            letter_range = f"{_cell(context, column, 1)}:{_cell(context, column, last_offset)}"
            rules.append(
                {
                    "range": letter_range,
                    "number_format": number_format or "#,##0.00",
                    "horizontal_alignment": "right",
                }
            )
        if numeric:
            done.append(say(lang, "fmt_numbers", fmt=number_format or "#,##0.00"))
            done.append(say(lang, "fmt_right"))
    return {"values": [], "formatting": rules, "text": say(lang, "formatted", what=", ".join(done))}


def chart(context: dict[str, Any]) -> dict[str, Any]:
    rows, query, lang = rows_of(context), query_of(context), language_of(context)
    numeric = numeric_columns(rows)
    asked = chart_type(query)
    if len(rows) < 2 or not numeric:
        return {
            "chart_type": asked or "column",
            "title": say(lang, "row_lengths"),
            "series": [{"name": say(lang, "cells"), "values": [float(len(r)) for r in rows] or [0.0]}],
        }
    if asked in ("pie", "doughnut"):  # one ring of shares: the named column, else the first numeric one
        named = mentioned_column(query, rows[0], numeric)
        numeric = [named if named is not None else numeric[0]]
    first, last = _row_number(context, 1), _row_number(context, len(rows) - 1)
    series = [
        {
            "name": str(rows[0][c]) if c < len(rows[0]) else say(lang, "series", n=c + 1),
            "values_range": f"{_letter(context, c)}{first}:{_letter(context, c)}{last}",
        }
        for c in numeric
    ]
    kind = asked or ("line" if len(rows) > 6 else "column")
    answer: dict[str, Any] = {
        "chart_type": kind,
        "title": query.strip()[:80] or say(lang, "chart"),
        "series": series,
        "text": say(lang, "chart_text", kind=kind, n=len(series)),
    }
    if 0 not in numeric:
        answer["categories_range"] = f"{_letter(context, 0)}{first}:{_letter(context, 0)}{last}"
        answer["x_axis_title"] = str(rows[0][0]) if rows[0] else None
    return answer


def histogram(context: dict[str, Any]) -> dict[str, Any]:
    rows, query, lang = rows_of(context), query_of(context), language_of(context)
    numeric = numeric_columns(rows) or [0]
    named = mentioned_column(query, rows[0] if rows else [], numeric)
    column = named if named is not None else numeric[-1]
    count = sum(1 for r in rows if column < len(r) and is_number(r[column]))
    bins = max(1, math.ceil(math.log2(count) + 1)) if count else 1  # Sturges' rule
    asked_bins = first_number(query) if wants(query, "bins") else None
    if asked_bins and 1 <= asked_bins <= 500:
        bins = asked_bins
    name = str(rows[0][column]) if rows and column < len(rows[0]) else say(lang, "value")
    return {
        "source_columns": [_letter(context, column)],
        "bins": bins,
        "title": say(lang, "distribution", name=name),
        "x_axis_title": name,
        "y_axis_title": say(lang, "frequency"),
    }


def text(context: dict[str, Any]) -> dict[str, Any]:
    lang = language_of(context)
    query = query_of(context).strip()[:300] or say(lang, "empty_request")
    return {"text": say(lang, "text_answer", query=query)}


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
