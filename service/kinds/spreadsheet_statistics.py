"""The spreadsheet kind's default dryrun answer: per-column statistics of the numeric columns, a
ranking when the query asks for the best or worst, the first → last change when it asks about a
trend. Categories with an answer shape of their own are in spreadsheet_answers.py."""

from __future__ import annotations

from typing import Any

from service.kinds.dryrun_intents import first_number, language, mentioned_column, say, wants
from service.kinds.spreadsheet_answers import is_number, numeric_columns, query_of, rows_of

Number = int | float


def _round(value: float) -> Number:
    rounded = round(value, 4)
    return int(rounded) if float(rounded).is_integer() else rounded


def column_statistics(rows: list[list[Any]], lang: str = "en") -> list[list[Any]]:
    """Count/sum/mean/min/max of each column holding numbers; a header row (all text) names them."""
    if not rows or not rows[0]:
        return [[say(lang, "column"), say(lang, "count")], [say(lang, "empty_range"), 0]]
    header, body = _split_header(rows)
    table: list[list[Any]] = [[say(lang, key) for key in ("column", "count", "sum", "mean", "min", "max")]]
    for index, name in enumerate(header):
        numbers = [row[index] for row in body if index < len(row) and is_number(row[index])]
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
        table = [[say(lang, "column"), say(lang, "non_empty"), say(lang, "distinct")]]
        for index, name in enumerate(header):
            values = [row[index] for row in body if index < len(row) and row[index] not in (None, "")]
            table.append([str(name), len(values), len({str(value) for value in values})])
    return table


def _split_header(rows: list[list[Any]]) -> tuple[list[Any], list[list[Any]]]:
    has_header = all(isinstance(cell, str) for cell in rows[0] if cell is not None) and len(rows) > 1
    header = rows[0] if has_header else [f"Column {index + 1}" for index in range(len(rows[0]))]
    return header, rows[1:] if has_header else rows


def ranking(rows: list[list[Any]], query: str, lang: str) -> tuple[list[list[Any]], str] | None:
    """The N best (or worst) rows by the named numeric column, else by the row total of all of them."""
    header, body = _split_header(rows)
    numeric = numeric_columns([header, *body])
    if not numeric or not body:
        return None
    named = mentioned_column(query, header, numeric)
    columns = [named] if named is not None else numeric
    label = next((c for c in range(len(header)) if c not in numeric), None)
    score_name = str(header[columns[0]]) if len(columns) == 1 else say(lang, "total")

    def score(row: list[Any]) -> float:
        return float(sum(row[c] for c in columns if c < len(row) and is_number(row[c])))

    scored = [row for row in body if any(c < len(row) and is_number(row[c]) for c in columns)]
    if not scored:
        return None
    worst = wants(query, "bottom")
    ordered = sorted(scored, key=score, reverse=not worst)[
        : max(1, min(first_number(query) or 5, len(scored)))
    ]
    table: list[list[Any]] = [
        [say(lang, "rank"), str(header[label]) if label is not None else say(lang, "value"), score_name]
    ]
    for place, row in enumerate(ordered, start=1):
        table.append(
            [place, row[label] if label is not None and label < len(row) else place, _round(score(row))]
        )
    order = say(lang, "bottom" if worst else "top")
    return table, say(lang, "ranking", order=order, n=len(ordered), name=score_name)


def trend(rows: list[list[Any]], lang: str) -> str:
    """First → last change: along each row when periods run across (several numeric columns),
    else down each numeric column."""
    header, body = _split_header(rows)
    numeric = numeric_columns([header, *body])
    label = next((c for c in range(len(header)) if c not in numeric), None)
    pairs: list[tuple[str, Any, Any]] = []
    if len(numeric) >= 2 and label is not None:
        for row in body:
            values = [row[c] for c in numeric if c < len(row) and is_number(row[c])]
            if len(values) >= 2:
                pairs.append((str(row[label]), values[0], values[-1]))
    else:
        for c in numeric:
            values = [row[c] for row in body if c < len(row) and is_number(row[c])]
            if len(values) >= 2:
                pairs.append((str(header[c]), values[0], values[-1]))
    parts = []
    for name, first, last in pairs[:10]:
        pct = f"{(last - first) / abs(first) * 100:+.1f}%" if first else "—"
        parts.append(say(lang, "change", name=name, first=_round(first), last=_round(last), pct=pct))
    return "; ".join(parts)


def spreadsheet_answer(context: dict[str, Any]) -> dict[str, Any]:
    rows, query = rows_of(context), query_of(context)
    lang = language(query, rows)
    if not rows:
        return {"values": [[say(lang, "query")], [query[:200]]], "text": say(lang, "no_input")}
    if wants(query, "top") or wants(query, "bottom"):
        ranked = ranking(rows, query, lang)
        if ranked is not None:
            return {"values": ranked[0], "text": ranked[1]}
    values = column_statistics(rows, lang)
    text = say(lang, "stats", n=len(values) - 1)
    if wants(query, "trend") and (changes := trend(rows, lang)):
        text = f"{text} {changes}."
    return {"values": values, "text": text}
