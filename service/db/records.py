"""A request row as a plain, immutable value: what the API reads and returns.

Cheaper than an ORM instance by two orders of magnitude to build (a status read builds one per
call), and the same whichever way the row was read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: uuid.UUID
    kind: str
    status: str
    category: str | None
    query_text: str | None
    input_range: str | None
    input_data: Any
    title: str | None
    description: str | None
    options: Any
    result: Any
    error_code: str | None
    error_message: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tokens_estimated: bool
    llm_calls: int
    llm_latency_ms: float | None
    llm_backend: str | None
    llm_model: str | None
    template_version: int | None
    attempts: int
    owner_id: str | None
    batch_id: uuid.UUID | None
    priority: str
    idempotency_key: str | None
    trace_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    idempotency_hash: str | None
    cached_from: uuid.UUID | None = None
    cached_prompt_tokens: int = 0
    tokens_saved: int = 0

    @classmethod
    def from_object(cls, row: Any) -> RequestRecord:
        return cls(**{name: getattr(row, name) for name in FIELD_NAMES})


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(RequestRecord))
# Columns a record leaves out: what the LLM was sent and answered can be large, and only the operator
# console reads it (through the ORM), never a status or result read.
NOT_IN_RECORD: tuple[str, ...] = ("transcript",)


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What a status poll needs: no input, no result (either can be megabytes)."""

    id: uuid.UUID
    kind: str
    status: str
    category: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    owner_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


STATUS_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(StatusRecord))
