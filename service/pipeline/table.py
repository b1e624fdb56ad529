"""A spreadsheet range as a compact Markdown table with its real cell addresses.

The model must be able to name cells ("=SUM(C4:C9)"), so columns carry their sheet letters and
rows their sheet numbers, starting at the range's top-left corner rather than at A1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.llm.base import estimate_tokens

_CELL = re.compile(r"^\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$")
_MAX_CELL_CHARS = 200  # longer cells are shortened in the prompt only; the data itself is untouched


@dataclass(frozen=True, slots=True)
class RangeRef:
    sheet: str | None
    first_col: int  # 1-based: A = 1
    first_row: int

    @property
    def origin(self) -> str:
        return f"{column_letters(self.first_col)}{self.first_row}"


@dataclass(frozen=True, slots=True)
class RenderedTable:
    text: str
    truncated: bool
    rows_total: int
    rows_shown: int
    cols_total: int
    cols_shown: int
    address: str  # the real address of the whole data, e.g. "B3:E10"


def column_letters(index: int) -> str:
    """1 → A, 26 → Z, 27 → AA."""
    if index < 1:
        raise ValueError("column index starts at 1")
    letters = ""
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_index(letters: str) -> int:
    index = 0
    for char in letters.upper():
        index = index * 26 + (ord(char) - ord("A") + 1)
    return index


def parse_range(text: str | None) -> RangeRef:
    """Top-left corner of an A1 range such as "Sheet1!$B$3:E10"; anything unparsable means A1."""
    if not text:
        return RangeRef(None, 1, 1)
    sheet, _, ref = text.strip().rpartition("!")
    first = ref.split(":", 1)[0]
    match = _CELL.match(first)
    if not match:
        return RangeRef(sheet or None, 1, 1)
    return RangeRef(sheet.strip("'") or None, column_index(match.group(1)), int(match.group(2)))


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")
    if len(text) > _MAX_CELL_CHARS:
        text = text[: _MAX_CELL_CHARS - 1] + "…"
    return text


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(letters: list[str]) -> list[str]:
    return [_line(["#", *letters]), "|" + "---|" * (len(letters) + 1)]


def render_table(
    input_range: str | None, data: list[list[Any]] | None, *, token_budget: int, language: str = "ru"
) -> RenderedTable:
    """Markdown table of `data` placed at `input_range`, cut to `token_budget` with a note saying so."""
    ref = parse_range(input_range)
    rows = [list(row) if isinstance(row, list | tuple) else [row] for row in (data or [])]
    n_rows = len(rows)
    n_cols = max((len(row) for row in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        empty = "(диапазон пуст)" if language == "ru" else "(the range is empty)"
        return RenderedTable(empty, False, 0, 0, 0, 0, input_range or "")
    cells = [[format_cell(row[i]) if i < len(row) else "" for i in range(n_cols)] for row in rows]
    letters = [column_letters(ref.first_col + i) for i in range(n_cols)]
    last = f"{letters[-1]}{ref.first_row + n_rows - 1}"
    address = f"{ref.origin}:{last}" if (n_rows, n_cols) != (1, 1) else ref.origin

    # Reserve room for the note; then narrow the columns until the header plus the first row fit in
    # half the budget, so that a very wide range still shows several rows.
    budget = max(1, token_budget - 60)
    cols = n_cols
    while (
        cols > 1
        and estimate_tokens("\n".join([*_head(letters[:cols]), _line(["", *cells[0][:cols]])])) > budget // 2
    ):
        cols -= 1
    lines = _head(letters[:cols])
    used = estimate_tokens("\n".join(lines))
    shown = 0
    for offset, row in enumerate(cells):
        line = _line([str(ref.first_row + offset), *row[:cols]])
        cost = estimate_tokens(line) + 1
        if shown and used + cost > budget:
            break
        lines.append(line)
        used += cost
        shown += 1
    shortened = any(len(format_cell(value)) >= _MAX_CELL_CHARS for row in rows for value in row)
    truncated = shown < n_rows or cols < n_cols or shortened
    if truncated:
        lines.append("")
        lines.append(_note(ref, letters, shown, n_rows, cols, n_cols, address, shortened, language))
    return RenderedTable("\n".join(lines), truncated, n_rows, shown, n_cols, cols, address)


def _note(
    ref: RangeRef,
    letters: list[str],
    shown: int,
    n_rows: int,
    cols: int,
    n_cols: int,
    address: str,
    shortened: bool,
    language: str,
) -> str:
    visible = f"{ref.origin}:{letters[cols - 1]}{ref.first_row + shown - 1}"
    if language == "ru":
        note = (
            f"Внимание: таблица обрезана по лимиту размера запроса. Показано {visible} "
            f"({shown} из {n_rows} строк, {cols} из {n_cols} столбцов) из диапазона {address}."
        )
        if shortened:
            note += " Длинные значения ячеек сокращены (…)."
        return note + " Учитывай, что остальные данные существуют, но не показаны."
    note = (
        f"Note: the table was truncated to fit the prompt size limit. Showing {visible} "
        f"({shown} of {n_rows} rows, {cols} of {n_cols} columns) of the range {address}."
    )
    if shortened:
        note += " Long cell values are shortened (…)."
    return note + " The remaining data exists but is not shown."
