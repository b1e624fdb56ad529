"""Kind `spreadsheet`: a question about a range of cells, answered from a category's template.

The seed contract's request (POST /api/ai/process sends exactly this body without `kind`). The
category is given or classified by the worker; the answer is validated against the category's
schema, with one repair round.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field, field_validator, model_validator

from service.config import Settings
from service.db.models import AnalysisRequest as Row
from service.db.requests_repo import ClaimedRequest
from service.errors import ValidationFailed
from service.kinds import spreadsheet_answers
from service.kinds.base import BuiltPrompt, Kind, KindInput, Problem, Prompts, too_long
from service.kinds.history import ConversationId, conversation_field
from service.kinds.spreadsheet_statistics import spreadsheet_answer
from service.llm.base import ChatRequest, ChatResponse
from service.pipeline.answer import parse_answer
from service.pipeline.categories import ACTIVE_CATEGORIES, SPREADSHEET_CATEGORIES
from service.pipeline.categories import resolve_category as resolve_category_name
from service.pipeline.table import column_index, column_letters
from service.schemas.fields import ColumnText, JsonScalar, NonBlankText
from service.schemas.requests import IdempotencyKey
from service.schemas.rows import row_objects
from service.schemas.webhooks import WebhookSpec

Cell = JsonScalar
RangeText = Annotated[str, ColumnText(Row.input_range)]

_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?([1-9][0-9]{0,6})$")


def parse_range(value: str) -> tuple[int, int, int, int]:
    """'A1:D10' (either corner first, or a single cell) → (first_col, first_row, last_col, last_row)."""
    parts = value.strip().split(":")
    if len(parts) not in (1, 2):
        raise ValueError("must look like A1:D10 or A1")
    corners = []
    for part in parts:
        match = _CELL_RE.match(part.strip())
        if not match:
            raise ValueError(f"'{part.strip()}' is not a cell address like A1 (columns A..XFD, rows from 1)")
        corners.append((column_index(match.group(1)), int(match.group(2))))
    (col_a, row_a), (col_b, row_b) = corners[0], corners[-1]
    if max(col_a, col_b) > 16384:
        raise ValueError("column beyond XFD, the last spreadsheet column")
    return min(col_a, col_b), min(row_a, row_b), max(col_a, col_b), max(row_a, row_b)


def normalise_range(value: str) -> str:
    first_col, first_row, last_col, last_row = parse_range(value)
    start = f"{column_letters(first_col)}{first_row}"
    end = f"{column_letters(last_col)}{last_row}"
    return start if start == end else f"{start}:{end}"


# The seed document's curl example: existing plugins send exactly this; docs, tests and the
# benchmark use it as the canonical spreadsheet request.
SEED_EXAMPLE: dict[str, Any] = {
    "query_text": "Проанализируй данные продаж и найди тренды",
    "input_range": "A1:D10",
    "category": "analysis",
    "input_data": [
        ["Товар", "Январь", "Февраль", "Март"],
        ["Товар A", 100, 120, 110],
        ["Товар B", 80, 90, 95],
    ],
}


class SpreadsheetInput(KindInput):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["spreadsheet"] = "spreadsheet"
    query_text: NonBlankText = Field(description="What to do with the range, in the user's words.")
    input_range: RangeText | None = Field(None, description="Address of the input range, e.g. A1:D10.")
    input_data: Annotated[list[list[Cell]] | None, row_objects(Cell)] = Field(
        None,
        description="Rows of cell values (str/number/bool/null), or a list of row objects "
        '(`[{"Товар": "A", "Янв": 1}]`: the keys become the header row).',
    )
    output_range: RangeText | None = Field(None, description="Where the plugin intends to write the answer.")
    category: Annotated[str, ColumnText(Row.category)] | None = Field(
        None, description="Category name or alias; omitted = classified."
    )
    conversation_id: ConversationId | None = conversation_field()
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")
    cache: bool = Field(True, description="false: never answered from the answer cache.")

    @field_validator("input_range", "output_range")
    @classmethod
    def _valid_range(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else normalise_range(value)

    @field_validator("input_data")
    @classmethod
    def _rectangular(cls, rows: list[list[Cell]] | None) -> list[list[Cell]] | None:
        if not rows:
            return rows
        width = len(rows[0])
        for index, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(
                    f"rows must all have the same length: row {index} has {len(row)} cells, row 0 has {width}"
                )
        return rows

    @model_validator(mode="after")
    def _data_fits_range(self) -> SpreadsheetInput:
        if self.input_range and self.input_data:
            first_col, first_row, last_col, last_row = parse_range(self.input_range)
            rows, cols = len(self.input_data), len(self.input_data[0])
            if rows > last_row - first_row + 1 or cols > last_col - first_col + 1:
                raise ValueError(
                    f"input_data has {rows}x{cols} cells, more than the range {self.input_range} holds"
                )
        return self


class Spreadsheet(Kind):
    name = "spreadsheet"
    Input = SpreadsheetInput
    repairs = True
    examples = {  # noqa: RUF012 (read only)
        "spreadsheet": {
            "summary": "Spreadsheet range with a question",
            "value": {"kind": "spreadsheet", **SEED_EXAMPLE},
        }
    }

    def limit_problems(self, body: SpreadsheetInput, settings: Settings) -> list[Problem]:
        problems = too_long("query_text", body.query_text, settings.max_query_chars)
        cell_chars = cells = 0
        for r, row in enumerate(body.input_data or []):
            cells += len(row)
            for c, cell in enumerate(row):
                if isinstance(cell, str):
                    cell_chars += len(cell)
                    if len(cell) > settings.max_cell_chars:
                        msg = f"a cell holds at most {settings.max_cell_chars} characters"
                        problems.append({"loc": f"input_data.{r}.{c}", "msg": msg})
        if cells > settings.max_input_cells:
            problems.append(
                {"loc": "input_data", "msg": f"at most {settings.max_input_cells} cells, got {cells}"}
            )
        if cell_chars > settings.max_input_chars:
            msg = f"at most {settings.max_input_chars} characters in all, got {cell_chars}"
            problems.append({"loc": "input_data", "msg": msg})
        return problems

    def category(self, body: SpreadsheetInput) -> str | None:
        if body.category is None or not body.category.strip():
            return None  # the worker classifies it
        name = resolve_category_name(body.category)
        if name not in SPREADSHEET_CATEGORIES:
            valid = [c for c in ACTIVE_CATEGORIES if c in SPREADSHEET_CATEGORIES]
            raise ValidationFailed(
                f"Unknown spreadsheet category '{body.category}'.",
                details=[
                    {
                        "loc": "category",
                        "msg": f"use one of {valid} or the aliases analysis, "
                        "transformation, search, generation; omit it to classify automatically",
                    }
                ],
            )
        return name

    def to_row(self, body: SpreadsheetInput, category: str | None) -> dict[str, Any]:
        return {
            "category": category,
            "query_text": body.query_text,
            "input_range": body.input_range,
            "input_data": body.input_data,
            "options": {"output_range": body.output_range} if body.output_range else None,
        }

    async def prompt(self, row: ClaimedRequest, prompts: Prompts) -> BuiltPrompt:
        context = {
            "kind": self.name,
            "query_text": row.query_text,
            "input_range": row.input_range,
            "input_data": row.input_data,
        }
        return await prompts.templated(self, row, context, row.category)

    def result(self, built: BuiltPrompt, response: ChatResponse) -> Any:
        return parse_answer(built.category or "", response.text)

    def dryrun(self, request: ChatRequest) -> str:
        # Per category (charts, formatting rules, ...) where one has its own shape, else statistics.
        answer = spreadsheet_answers.ANSWERS.get(str(request.context.get("category")), spreadsheet_answer)
        return orjson.dumps(answer(request.context)).decode()
