"""ORM models. The schema changes only through Alembic migrations (alembic/versions)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere (SQLite).
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime}  # noqa: RUF012


class RequestStatus:
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    ACTIVE = (QUEUED, PROCESSING)
    FINAL = (COMPLETED, FAILED, CANCELLED, EXPIRED)


ACTIVE_ROWS = "status IN ('queued', 'processing')"
QUEUED_INTERACTIVE = "status = 'queued' AND batch_id IS NULL"
QUEUED_BATCH = "status = 'queued' AND batch_id IS NOT NULL"


# Columns the console's aggregates read, carried in its indexes on PostgreSQL (migration 0008).
USAGE_COLUMNS = ("owner_id", "llm_model", "status", "prompt_tokens", "completion_tokens", "total_tokens")
PROMPT_STATS_COLUMNS = ("template_version", "status", "error_code", "total_tokens", "owner_id")


def partial(condition: str) -> dict[str, Any]:
    """A partial index on both supported databases."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


class AnalysisRequest(Base):
    """One analysis request: its input, its lifecycle and, once final, its result or error."""

    __tablename__ = "requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # a registered kind's name (service/kinds/)
    status: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64))
    # The input, in the columns each kind maps its body to (service/kinds/): a question
    # (query_text), cells (input_range, input_data), a title and a longer text (description).
    query_text: Mapped[str | None] = mapped_column(Text)
    input_range: Mapped[str | None] = mapped_column(String(32))
    input_data: Mapped[Any | None] = mapped_column(JSONType)
    title: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    options: Mapped[Any | None] = mapped_column(JSONType)  # company size, industry, language, ...
    # The outcome.
    result: Mapped[Any | None] = mapped_column(JSONType)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Accounting of LLM calls made for this request.
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    llm_backend: Mapped[str | None] = mapped_column(String(32))
    llm_model: Mapped[str | None] = mapped_column(String(128))
    template_version: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Room for ownership, batches, priority lanes and idempotent submits.
    owner_id: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    # "owner:key": the longest owner id, ":" and a 128-character key (migration 0006).
    idempotency_key: Mapped[str | None] = mapped_column(String(64 + 1 + 128))
    trace_id: Mapped[str | None] = mapped_column(String(32))
    # Lifecycle timestamps.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A processing row whose lease ran out belongs to a worker that vanished.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SHA-256 of the submitted body (without its key): a reused idempotency key with another body
    # is a conflict, not a replay of the first request.
    idempotency_hash: Mapped[str | None] = mapped_column(String(64))
    # The answer cache (migration 0009): the request whose LLM call paid for this cached answer (None:
    # not from the cache), the prompt tokens the provider served from its own prompt cache (part of
    # prompt_tokens, billed at the cached price), and the tokens a cache hit did not spend.
    cached_from: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    cached_prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tokens_saved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the LLM was sent and answered, as the operator console shows it (migration 0008):
    # {"calls": [{"messages": [{"role", "content"}, ...], "answer": "raw text"}, ...]}.
    transcript: Mapped[Any | None] = mapped_column(JSONType)

    # Partial indexes: every submit inserts and every request updates its row twice, so each index
    # holds only the rows its queries look for (PostgreSQL CPU per submit drops accordingly).
    __table_args__ = (
        # The sweeper's look-ups: unfinished rows by age.
        Index("ix_requests_active", "status", "updated_at", **partial(ACTIVE_ROWS)),
        Index("ix_requests_owner_created", "owner_id", "created_at", **partial("owner_id IS NOT NULL")),
        # Carries the status on PostgreSQL (migration 0008): a batch's progress is an index-only count.
        Index(
            "ix_requests_batch", "batch_id", postgresql_include=["status"], **partial("batch_id IS NOT NULL")
        ),
        # Queue position (migration 0005): queued rows of each lane by age.
        Index("ix_requests_queued_interactive", "created_at", **partial(QUEUED_INTERACTIVE)),
        Index("ix_requests_queued_batch", "created_at", **partial(QUEUED_BATCH)),
        # Scoped to the owner in its value ("owner:key"), so anonymous callers are deduplicated too.
        # The operator console (migration 0008): listings newest first, whole or by one filter, with
        # (created_at, id) as the keyset; figures of the last hour by finish time.
        # On PostgreSQL the time index also carries what usage sums, and the category index what the
        # prompt-version figures need, so those aggregates are index-only scans.
        Index("ix_requests_created", "created_at", "id", postgresql_include=list(USAGE_COLUMNS)),
        # The owner rides along so that a user's filtered listing rejects other owners' rows in the
        # index, without reading them.
        Index("ix_requests_status_created", "status", "created_at", "id", postgresql_include=["owner_id"]),
        Index("ix_requests_kind_created", "kind", "created_at", "id", postgresql_include=["owner_id"]),
        Index(
            "ix_requests_category_created",
            "category",
            "created_at",
            "id",
            postgresql_include=list(PROMPT_STATS_COLUMNS),
        ),
        # Also the retention purge's (finished_at < cutoff implies the partial condition).
        Index("ix_requests_finished", "finished_at", **partial("finished_at IS NOT NULL")),
        Index(
            "ix_requests_idempotency",
            "idempotency_key",
            unique=True,
            **partial("idempotency_key IS NOT NULL"),
        ),
    )


class UsagePurged(Base):
    """Usage of requests the retention purge removed, per day, owner, status and model ("" for
    none), so usage and cost figures stay what they were. Live rows + these = all usage ever."""

    __tablename__ = "usage_purged"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
