"""API models of analysis requests shared by every kind: the idempotency key and the answers of the
request routes. Each kind's submit body is in its own module (service/kinds/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from service.db.models import AnalysisRequest as Row
from service.schemas.fields import Text, column_length

# The stored key is "owner:key" (requests_repo.scoped_idempotency_key): the caller's part gets what
# the column leaves after the longest owner id and the separator.
IDEMPOTENCY_KEY_MAX = (column_length(Row.idempotency_key) or 0) - (column_length(Row.owner_id) or 0) - 1
IdempotencyKey = Annotated[str, Text(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)]


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
    cached: bool = Field(False, description="Answered from the answer cache: no tokens billed.")
    cached_from: uuid.UUID | None = Field(None, description="The request whose LLM call paid for it.")
    cached_prompt_tokens: int = Field(0, description="Prompt tokens the provider served from its cache.")
    tokens_saved: int = Field(0, description="Tokens a cache hit did not spend again.")


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
    cached: bool = Field(False, description="Answered from the answer cache (no LLM call of its own).")
    cached_from: uuid.UUID | None = Field(None, description="The request whose LLM call paid for it.")
