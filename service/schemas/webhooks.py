"""API models of webhooks: a per-request `webhook`, owner endpoints, the delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.fields import Text

WebhookEventType = Literal[
    "request.completed",
    "request.failed",
    "request.cancelled",
    "request.expired",
    "batch.completed",
    "batch.failed",
    "batch.cancelled",
    "batch.expired",
]


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Text(max_length=2000)] = Field(description="http(s) URL that receives signed POSTs.")
    events: list[WebhookEventType] = Field(
        default_factory=list, description="Event types to send; empty means every final status."
    )


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The whsec_… signing secret. Shown once: store it now.")


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header of this message.")
    event_type: str
    request_id: uuid.UUID | None
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
