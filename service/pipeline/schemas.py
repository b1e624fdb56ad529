"""Output schemas: the shape an answer must have before it may be stored, one per schema kind.

Models are lenient about spelling the model can't be trusted with (key synonyms, "7/10", a bare
number for savings) and strict about substance (non-empty results, score range, known chart types).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

Cell = str | int | float | bool | None

_A1_RANGE = re.compile(
    r"^(?:(?:'[^']+'|[A-Za-z0-9_.\u0400-\u04ff]+)!)?\$?[A-Z]{1,3}\$?[0-9]{1,7}(?::\$?[A-Z]{1,3}\$?[0-9]{1,7})?$"
)
_COLUMN = re.compile(r"^\$?[A-Z]{1,3}(?::\$?[A-Z]{1,3})?$")


def _check_range(value: str | None) -> str | None:
    if value is None:
        return None
    sheet, bang, ref = value.strip().rpartition("!")
    value = f"{sheet}{bang}{ref.upper()}"  # sheet names keep their case, cell refs do not
    if not ref:
        return None
    if not _A1_RANGE.match(value):
        raise ValueError(f"{value!r} is not a cell range such as 'A1' or 'B2:D10'")
    return value


def _require_range(value: str) -> str:
    checked = _check_range(value)
    if checked is None:
        raise ValueError("a cell range such as 'A1:B2' is required")
    return checked


RangeRef = Annotated[str, AfterValidator(_require_range)]
OptionalRangeRef = Annotated[str | None, AfterValidator(_check_range)]


class _Lenient(BaseModel):
    # Extra keys are dropped, not rejected: models like to add "explanation" fields.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FormatRule(_Lenient):
    range: RangeRef
    bold: bool | None = None
    italic: bool | None = None
    font_color: str | None = None
    background_color: str | None = Field(None, validation_alias=AliasChoices("background_color", "fill"))
    number_format: str | None = None
    horizontal_alignment: Literal["left", "center", "right"] | None = None


class TableAnswer(_Lenient):
    """Values (and formulas, as strings starting with '=') to write back into the sheet."""

    values: list[list[Cell]] = Field(
        default_factory=list,
        validation_alias=AliasChoices("values", "data", "result", "table", "rows", "output_data"),
    )
    output_range: OptionalRangeRef = None
    text: str | None = Field(None, validation_alias=AliasChoices("text", "summary", "explanation", "comment"))
    formatting: list[FormatRule] = Field(default_factory=list)

    @field_validator("values", mode="before")
    @classmethod
    def _rows_are_lists(cls, value: Any) -> Any:
        # A single row given as a flat list is a common slip; a flat list of scalars becomes one row.
        if isinstance(value, list) and value and all(not isinstance(row, list) for row in value):
            return [value]
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TableAnswer:
        self.values = _pad_rows(self.values)
        if not self.values and not (self.text and self.text.strip()) and not self.formatting:
            raise ValueError("the answer has neither 'values' nor 'text': at least one must be non-empty")
        return self


def _pad_rows(rows: list[list[Cell]]) -> list[list[Cell]]:
    """Ragged rows are padded so the plugin can write a rectangle."""
    rows = [row for row in rows if row is not None]
    width = max((len(row) for row in rows), default=0)
    return [row + [None] * (width - len(row)) for row in rows] if width else []


ChartType = Literal["line", "bar", "column", "pie", "area", "scatter", "doughnut", "radar"]


class ChartSeries(_Lenient):
    name: str = ""
    values_range: OptionalRangeRef = Field(
        None, validation_alias=AliasChoices("values_range", "range", "data_range")
    )
    values: list[float | None] | None = Field(None, validation_alias=AliasChoices("values", "data"))

    @model_validator(mode="after")
    def _has_data(self) -> ChartSeries:
        if not self.values_range and not self.values:
            raise ValueError("each series needs 'values_range' (e.g. 'B2:B10') or a non-empty 'values' list")
        return self


class ChartAnswer(_Lenient):
    chart_type: ChartType = Field(validation_alias=AliasChoices("chart_type", "type"))
    title: str = ""
    series: list[ChartSeries] = Field(min_length=1)
    categories_range: OptionalRangeRef = Field(
        None, validation_alias=AliasChoices("categories_range", "categories", "x_range", "labels_range")
    )
    x_axis_title: str | None = None
    y_axis_title: str | None = None
    legend: bool = True
    text: str | None = None

    @field_validator("chart_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class HistogramAnswer(_Lenient):
    source_columns: list[str] = Field(
        min_length=1, validation_alias=AliasChoices("source_columns", "columns", "source_column")
    )
    bins: int | None = Field(None, ge=1, le=500)
    bin_edges: list[float] | None = None
    title: str = ""
    x_axis_title: str | None = None
    y_axis_title: str | None = None
    text: str | None = None

    @field_validator("source_columns", mode="before")
    @classmethod
    def _one_column(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("source_columns")
    @classmethod
    def _column_letters(cls, value: list[str]) -> list[str]:
        columns = [item.strip().upper() for item in value]
        bad = [item for item in columns if not _COLUMN.match(item)]
        if bad:
            raise ValueError(f"source_columns must be column letters such as 'B' or 'B:C', got {bad}")
        return columns

    @model_validator(mode="after")
    def _binning(self) -> HistogramAnswer:
        if self.bins is None and not self.bin_edges:
            raise ValueError("give 'bins' (number of bins) or 'bin_edges' (ascending boundaries)")
        if self.bin_edges is not None and (
            len(self.bin_edges) < 2
            or any(a >= b for a, b in zip(self.bin_edges, self.bin_edges[1:], strict=False))
        ):
            raise ValueError("'bin_edges' must hold at least two strictly ascending numbers")
        return self


class TextAnswer(_Lenient):
    text: str = Field(min_length=1, validation_alias=AliasChoices("text", "answer", "response", "message"))

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("'text' is blank")
        return value.strip()


class Solution(_Lenient):
    description: str = Field(min_length=1, validation_alias=AliasChoices("description", "summary", "text"))
    tools: list[str] = Field(min_length=1)


class Savings(_Lenient):
    hours_per_month: float = Field(ge=0, le=10_000, validation_alias=AliasChoices("hours_per_month", "hours"))
    description: str | None = None


class ProcessAnalysis(_Lenient):
    """The SmartFlowAI structure: score, main problem, solution with tools, savings, steps."""

    score: Annotated[int, Field(ge=1, le=10)]
    problem: str = Field(min_length=1)
    solution: Solution
    savings: Savings
    implementation: list[str] = Field(min_length=1, validation_alias=AliasChoices("implementation", "steps"))
    summary: str | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score_text(cls, value: Any) -> Any:
        # "7/10" and "8 из 10" both mean the first number.
        if isinstance(value, str):
            match = re.match(r"\s*(\d+(?:[.,]\d+)?)", value)
            if match:
                return round(float(match.group(1).replace(",", ".")))
        if isinstance(value, float):
            return round(value)
        return value

    @field_validator("solution", mode="before")
    @classmethod
    def _solution_text(cls, value: Any) -> Any:
        return {"description": value, "tools": []} if isinstance(value, str) else value

    @field_validator("savings", mode="before")
    @classmethod
    def _savings_number(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            return {"hours_per_month": value}
        if isinstance(value, str):
            match = re.search(r"\d+(?:[.,]\d+)?", value)
            if match:
                return {"hours_per_month": float(match.group(0).replace(",", ".")), "description": value}
        return value

    @field_validator("implementation", mode="before")
    @classmethod
    def _steps_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [line.strip(" -*\t0123456789.)") for line in value.splitlines() if line.strip(" -*\t")]
        return value


SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "table": TableAnswer,
    "chart": ChartAnswer,
    "histogram": HistogramAnswer,
    "text": TextAnswer,
    "process_analysis": ProcessAnalysis,
}
