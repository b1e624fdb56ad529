"""API shapes of batches and files: native (/api/v1/batches) and OpenAI's (/v1/batches, /v1/files)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from service.db.batch_models import Batch, BatchView, StoredFile
from service.db.models import RequestStatus
from service.schemas.fields import ColumnText, Text

# Path, query and body texts of the batch and file routes (service/schemas/fields.py rules).
BatchIdText = Annotated[str, Text(min_length=1, max_length=64)]  # "batch_<uuid>" or a bare uuid
FileIdText = Annotated[str, ColumnText(StoredFile.id, min_length=1)]
CursorText = Annotated[str, Text(max_length=64)]  # the id of the last item of the previous page
PurposeText = Annotated[str, ColumnText(StoredFile.purpose)]
WindowText = Annotated[str, ColumnText(Batch.completion_window)]
EndpointText = Annotated[str, ColumnText(Batch.endpoint)]
# OpenAI's metadata limits: keys up to 64 characters, values up to 512.
MetadataKey = Annotated[str, Text(max_length=64)]
MetadataValue = Annotated[str, Text(max_length=512)]


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def openai_batch_id(batch_id: uuid.UUID) -> str:
    return f"batch_{batch_id.hex}"


def parse_batch_id(value: str) -> uuid.UUID | None:
    """Both forms name one batch: the native UUID and OpenAI's `batch_<hex>`."""
    try:
        return uuid.UUID(value.removeprefix("batch_"))
    except ValueError:
        return None


# --- native ----------------------------------------------------------------------------------------


class BatchLinks(BaseModel):
    self: str
    results: str


class NativeBatch(BaseModel):
    id: uuid.UUID
    object: Literal["batch"] = "batch"
    status: str
    endpoint: str
    counts: dict[str, int] = Field(description="total and lines per request status")
    progress: float = Field(description="Share of lines that reached a final status, 0..1.")
    errors: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime
    in_progress_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    expired_at: datetime | None
    failed_at: datetime | None
    links: BatchLinks

    @classmethod
    def of(cls, view: BatchView) -> NativeBatch:
        batch, counts = view.batch, view.counts
        done = sum(counts.get(status, 0) for status in RequestStatus.FINAL)
        base = f"/api/v1/batches/{batch.id}"
        return cls(
            id=batch.id,
            status=batch.status,
            endpoint=batch.endpoint,
            counts=counts,
            progress=round(done / counts["total"], 4) if counts["total"] else 1.0,
            errors=batch.errors,
            metadata=batch.batch_metadata,
            created_at=batch.created_at,
            expires_at=batch.expires_at,
            in_progress_at=batch.in_progress_at,
            completed_at=batch.completed_at,
            cancelled_at=batch.cancelled_at,
            expired_at=batch.expired_at,
            failed_at=batch.failed_at,
            links=BatchLinks(self=base, results=f"{base}/results"),
        )


class NativeBatchList(BaseModel):
    data: list[NativeBatch]
    has_more: bool


# --- OpenAI ----------------------------------------------------------------------------------------


class OpenAIFile(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None

    @classmethod
    def of(cls, stored: StoredFile) -> OpenAIFile:
        return cls(
            id=stored.id,
            bytes=stored.bytes,
            created_at=_ts(stored.created_at) or 0,
            filename=stored.filename,
            purpose=stored.purpose,
            expires_at=_ts(stored.expires_at),
        )


class OpenAIFileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class CreateBatchBody(BaseModel):
    input_file_id: FileIdText
    endpoint: EndpointText
    completion_window: WindowText = "24h"
    metadata: dict[MetadataKey, MetadataValue] | None = Field(None, max_length=16)


class OpenAIBatch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, view: BatchView) -> OpenAIBatch:
        batch, counts = view.batch, view.counts
        # OpenAI passes through `finalizing` on the way to completed; a finished batch shows its final status.
        return cls(
            id=openai_batch_id(batch.id),
            endpoint=batch.endpoint,
            errors=BatchErrors(data=batch.errors) if batch.errors else None,
            input_file_id=batch.input_file_id or "",
            completion_window=batch.completion_window,
            status=batch.status,
            output_file_id=view.output_file_id,
            error_file_id=view.error_file_id,
            created_at=_ts(batch.created_at) or 0,
            in_progress_at=_ts(batch.in_progress_at),
            expires_at=_ts(batch.expires_at),
            finalizing_at=_ts(batch.finalizing_at),
            completed_at=_ts(batch.completed_at),
            failed_at=_ts(batch.failed_at),
            expired_at=_ts(batch.expired_at),
            cancelling_at=_ts(batch.cancelling_at),
            cancelled_at=_ts(batch.cancelled_at),
            request_counts=RequestCounts(
                total=counts["total"],
                completed=counts.get(RequestStatus.COMPLETED, 0),
                failed=counts.get(RequestStatus.FAILED, 0),
            ),
            metadata=batch.batch_metadata,
        )


class OpenAIBatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIBatch]
    first_id: str | None
    last_id: str | None
    has_more: bool


# The native routes' extra status (the envelope is the API's usual one).
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "The batch is larger than BATCH_MAX_BYTES"}
}


# --- OpenAI's error shape, documented on every /v1 batch and file route --------------------------


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorEnvelope(BaseModel):
    error: OpenAIErrorBody


def _openai_error(description: str) -> dict[str, Any]:
    return {"model": OpenAIErrorEnvelope, "description": description}


OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _openai_error("A body that cannot be read (e.g. broken multipart)"),
    401: _openai_error("No valid API key"),
    404: _openai_error("Unknown (or someone else's) file or batch"),
    409: _openai_error("The batch is already final"),
    413: _openai_error("The file is larger than BATCH_MAX_BYTES"),
    422: _openai_error("Invalid parameters"),
    429: _openai_error("A rate limit ran out; see Retry-After"),
    500: _openai_error("Internal error"),
    503: _openai_error("A dependency is unavailable; see Retry-After"),
}
