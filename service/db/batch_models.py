"""ORM models of batches and files (migration 0007). A batch line is an ordinary request row
(requests.batch_id) plus its place in the batch (batch_lines); files hold uploaded input in parts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import AnalysisRequest, Base, JSONType, UTCDateTime, partial


class Lane:
    """requests.priority of a row says which queue it is in (and whether it was published yet)."""

    INTERACTIVE = "normal"
    BATCH_HELD = "batch-held"  # a batch line not yet released to the broker by the feeder
    BATCH = "batch"  # released: published on the batch topic


class BatchStatus:
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    OPEN = (IN_PROGRESS, CANCELLING)
    FINAL = (FAILED, COMPLETED, EXPIRED, CANCELLED)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    # "/v1/chat/completions" or "/api/v1/requests": what every line calls, and the shape of outputs.
    endpoint: Mapped[str] = mapped_column(String(64))
    surface: Mapped[str] = mapped_column(String(16))  # "openai" or "native": how it was created
    input_file_id: Mapped[str | None] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    batch_metadata: Mapped[Any | None] = mapped_column("metadata", JSONType)
    errors: Mapped[Any | None] = mapped_column(JSONType)  # per-line validation errors of a failed batch
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Counts frozen when the batch reached a final status; open batches count their rows live.
    final_counts: Mapped[Any | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_batches_owner_created", "owner_id", "created_at"),
        Index("ix_batches_open", "status", **partial("status IN ('in_progress', 'cancelling')")),
    )


class BatchLine(Base):
    """Where a request row sits in its batch: line number (1-based, input order) and custom_id."""

    __tablename__ = "batch_lines"

    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("batches.id"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(256))
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(256))
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    # Output and error files are not stored: their content is rendered from the batch's rows.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str | None] = mapped_column(Text)
    # `expires_after` of the upload (OpenAI Files API); batch output and error files take their
    # batch's retention instead (the purge removes them with the batch).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_files_owner_created", "owner_id", "created_at"),
        Index("ix_files_expires", "expires_at", **partial("expires_at IS NOT NULL")),
    )


class FilePart(Base):
    """An uploaded file in parts of about a megabyte: streamed in and out, never held whole."""

    __tablename__ = "file_parts"

    file_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# The feeder's look-ups on the requests table: lines waiting for release, and lines in the lane.
_REQUESTS = AnalysisRequest.__table__
Index("ix_requests_batch_held", _REQUESTS.c.owner_id, **partial("priority = 'batch-held'"))
Index(
    "ix_requests_batch_lane",
    _REQUESTS.c.owner_id,
    **partial("priority = 'batch' AND status IN ('queued', 'processing')"),
)


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch as the surfaces show it: the row, its counts and its result files."""

    batch: Batch
    counts: dict[str, int]  # total plus one entry per request status
    output_file_id: str | None
    error_file_id: str | None
