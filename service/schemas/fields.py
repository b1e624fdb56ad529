"""The one place that knows what an input value may be: text the database can store, integers that
fit their column, JSON that survives every hop. Routes and schemas build their fields from here.

- Text: PostgreSQL cannot store NUL (U+0000) and UTF-8 cannot encode a lone surrogate
  (U+D800..U+DFFF, which JSON's "\\udfff" escapes produce); both are refused at the edge with a 422.
- Lengths: a field stored in a String(n) column gets `max_length=n` from the column itself
  (`ColumnText`), so the schema and the table cannot drift apart.
- Integers: ids and counters are checked against their column's range (`ColumnInt`, `IdPath`);
  JSON numbers must fit 64 bits (what JSONB, orjson and the workers carry without loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import GroupedMetadata, Interval
from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, Strict, StringConstraints
from sqlalchemy import BigInteger, Integer, SmallInteger, String
from sqlalchemy.orm import InstrumentedAttribute

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# JSON nested deeper than this is not a spreadsheet or a template example; refusing it also keeps
# the recursive checks below far from Python's recursion limit.
MAX_JSON_DEPTH = 32


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None. Shared by every text check of the service."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which text cannot hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        return f"contains a lone surrogate (\\u{ord(bad):04x} at {exc.start}), which is not valid Unicode"
    return None


def check_text(value: Any) -> Any:
    """Before-validator: runs ahead of pydantic's own str check so the message names the problem."""
    if isinstance(value, str) and (problem := text_problem(value)):
        raise ValueError(problem)
    return value


def check_json(value: Any, depth: int = 0) -> Any:
    """After-validator for free-form JSON: every string (keys too) storable, every integer within
    64 bits, every float finite."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        check_int64(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)
    return value


def check_int64(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(
            "integer out of the 64-bit range (-9223372036854775808..9223372036854775807); "
            "send larger numbers as strings"
        )
    return value


# --- annotations for request models and parameters ---------------------------------------------
# Used as `Annotated[str, Text(max_length=64)]`, `Annotated[str | None, ColumnText(Row.note)]`,
# `Annotated[int, ColumnInt(Row.sort_order)]`: plain `Annotated` that type checkers understand, and
# pydantic expands the group into the constraints and the validator.


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """Storable text (no NUL, no lone surrogate) with optional length limits and stripping."""

    min_length: int | None = None
    max_length: int | None = None
    strip: bool = False
    pattern: str | None = None

    def __iter__(self) -> Iterator[Any]:
        yield StringConstraints(
            strip_whitespace=self.strip or None,
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.pattern,
        )
        yield BeforeValidator(check_text)


def ColumnText(
    column: InstrumentedAttribute[Any],
    *,
    min_length: int | None = None,
    strip: bool = False,
    max_length: int | None = None,
) -> Text:
    """Text stored in `column`: at most as long as the column holds (`max_length` may be stricter)."""
    limit = column_length(column)
    if max_length is not None:
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length {max_length} exceeds the {limit} of column {column}")
        limit = max_length
    return Text(min_length=min_length, max_length=limit, strip=strip)


@dataclass(frozen=True)
class IntRange(GroupedMetadata):
    """Integer bounds; `strict` refuses what JSON clients should not send for a count (true, 1.0,
    "1"). Not for path or query parameters, which always arrive as text."""

    ge: int
    le: int
    strict: bool = False

    def __iter__(self) -> Iterator[Any]:
        if self.strict:
            yield Strict()
        yield Interval(ge=self.ge, le=self.le)


def ColumnInt(column: InstrumentedAttribute[Any], *, ge: int | None = None, strict: bool = False) -> IntRange:
    """An integer that fits `column` (int32 for Integer, int64 for BigInteger), optionally >= `ge`."""
    low, high = column_range(column)
    return IntRange(ge=low if ge is None else max(low, ge), le=high, strict=strict)


SafeText = Annotated[str, Text()]
LanguageCode = Annotated[str, Text(pattern="^(ru|en)$")]
NonBlankText = Annotated[str, Text(min_length=1, strip=True)]
Int32 = Annotated[int, Interval(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Interval(ge=INT64_MIN, le=INT64_MAX)]
# A spreadsheet cell or any JSON scalar. Checked before the union so a bad string or a huge integer
# gets its own message instead of one failure per union member.
JsonScalar = Annotated[str | int | float | bool | None, BeforeValidator(check_json)]
# Free-form JSON (template examples, metadata): checked all the way down.
SafeJson = Annotated[Any, AfterValidator(check_json)]
SafeJsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


def column_length(column: InstrumentedAttribute[Any]) -> int | None:
    """The declared length of a String(n) column (None for unbounded Text)."""
    column_type = column.property.columns[0].type
    return column_type.length if isinstance(column_type, String) else None


def column_range(column: InstrumentedAttribute[Any]) -> tuple[int, int]:
    """The value range of an integer column."""
    column_type = column.property.columns[0].type
    if isinstance(column_type, BigInteger):
        return INT64_MIN, INT64_MAX
    if isinstance(column_type, SmallInteger):
        return -(2**15), 2**15 - 1
    if isinstance(column_type, Integer):
        return INT32_MIN, INT32_MAX
    raise TypeError(f"{column} is not an integer column")


def IdPath(column: InstrumentedAttribute[Any], description: str | None = None) -> Any:
    """A path parameter holding a row id of the integer key `column`: 1..the column's maximum.
    Use as `Annotated[int, IdPath(Row.id)]`."""
    _low, high = column_range(column)
    return Path(ge=1, le=high, description=description)
