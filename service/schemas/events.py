"""Status events on the responses topic: a versioned JSON envelope, keyed by request id.

A request that reaches a final status (completed, failed, cancelled, expired) gets exactly one
*completion event*, published after the final state is committed, by whoever committed it (the
worker, the sweeper, the API's cancel). Workers also publish a `processing` event when they claim a
request, for live status streams; consumers that only care about completions skip non-final ones.
Delivery is at-most-once per transition (a lost event is recovered by readers re-checking the row).

A batch that reaches a final status gets one event too, from the feeder that finalised it:
`kind` "batch", `request_id` and `batch_id` both the batch's id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from service.db.models import RequestStatus, utcnow

EVENT_SCHEMA_VERSION = 1
BATCH_KIND = "batch"


class StatusEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1  # EVENT_SCHEMA_VERSION; bump both together
    request_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    owner_id: str | None = None
    kind: str
    status: str
    error_code: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    published_at: datetime
    # W3C trace context of the publishing span (service/tracing.py); None while tracing is off.
    traceparent: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in RequestStatus.FINAL

    @property
    def is_batch(self) -> bool:
        return self.kind == BATCH_KIND

    @property
    def key(self) -> bytes:
        return str(self.request_id).encode()

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> StatusEvent:
        return cls.model_validate_json(raw or b"")

    @classmethod
    def of_batch(cls, batch: Any) -> StatusEvent:
        """From a finalised batches row (batch_models.Batch)."""
        return cls(
            request_id=batch.id,
            batch_id=batch.id,
            owner_id=batch.owner_id,
            kind=BATCH_KIND,
            status=batch.status,
            created_at=batch.created_at,
            started_at=batch.in_progress_at,
            finished_at=batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at,
            published_at=utcnow(),
        )

    @classmethod
    def of(cls, state: Any, traceparent: str | None = None) -> StatusEvent:
        """From anything with the row's fields (requests_repo.FinalState, a record)."""
        return cls(
            request_id=state.id,
            batch_id=state.batch_id,
            owner_id=state.owner_id,
            kind=state.kind,
            status=state.status,
            error_code=state.error_code,
            created_at=state.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            published_at=utcnow(),
            traceparent=traceparent,
        )
