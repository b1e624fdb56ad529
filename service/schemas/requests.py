"""API models of analysis requests. Structural checks live here; configurable limits in services."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.db.models import AnalysisRequest as Row
from service.pipeline.table import column_index, column_letters
from service.schemas.fields import ColumnText, JsonScalar, NonBlankText, SafeText, Text, column_length
from service.schemas.rows import row_objects
from service.schemas.webhooks import WebhookSpec

Cell = JsonScalar
NonBlank = NonBlankText
RangeText = Annotated[str, ColumnText(Row.input_range)]
# The stored key is "owner:key" (requests_repo.scoped_idempotency_key): the caller's part gets what
# the column leaves after the longest owner id and the separator.
IDEMPOTENCY_KEY_MAX = (column_length(Row.idempotency_key) or 0) - (column_length(Row.owner_id) or 0) - 1
IdempotencyKey = Annotated[str, Text(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)]

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


class SpreadsheetInput(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["spreadsheet"] = "spreadsheet"
    query_text: NonBlank = Field(description="What to do with the range, in the user's words.")
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
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")

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


class ProcessAnalysisInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["process_analysis"]
    title: Annotated[str, ColumnText(Row.title, min_length=1, strip=True)]
    description: NonBlank = Field(description="The business process, as its owner describes it.")
    company_size: Annotated[str, Text(max_length=64)] | None = None
    industry: Annotated[str, Text(max_length=128)] | None = None
    language: Literal["ru", "en"] | None = None
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: SafeText


MAX_CHAT_MESSAGES = 500


class ChatInput(BaseModel):
    """A caller's own conversation, sent to the configured backend without a template."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["chat"]
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    model: Annotated[str, Text(max_length=128)] | None = Field(
        None, description="Omitted: the backend's configured model."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")

    @model_validator(mode="after")
    def _has_user_turn(self) -> ChatInput:
        if not any(message.role == "user" and message.content.strip() for message in self.messages):
            raise ValueError("messages must hold at least one non-empty user message")
        return self


AnyRequestInput = SpreadsheetInput | ProcessAnalysisInput | ChatInput
RequestInput = Annotated[AnyRequestInput, Field(discriminator="kind")]


class Links(BaseModel):
    status: str
    result: str


class SubmitResponse(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    created_at: datetime
    links: Links


class ErrorInfo(BaseModel):
    code: str
    message: str


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool
    llm_calls: int
    llm_latency_ms: float | None
    backend: str | None
    model: str | None


class QueueInfo(BaseModel):
    lane: str
    ahead: int = Field(
        description="Queued requests of this lane submitted earlier (a lower bound when capped)."
    )
    ahead_capped: bool = Field(
        False, description="True when there are at least `ahead` (the count stops there)."
    )
    eta_seconds: float | None = Field(
        None, description="Estimated wait before processing starts, from the recent completion rate."
    )


class RequestStatusOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    category: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: ErrorInfo | None
    links: Links
    queue: QueueInfo | None = Field(None, description="While queued: position in its lane and an ETA.")


class RequestResultOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    category: str | None
    result: Any
    template_version: int | None
    usage: UsageInfo
    processing_time: float | None = Field(description="Seconds from start of processing to the answer.")
