"""ORM models of webhook endpoints and their delivery log (migration 0005)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, JSONType, UTCDateTime, partial


class DeliveryState:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: attempts used up, endpoint gone (410) or refused as unsafe


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[Any] = mapped_column(JSONType)
    secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_endpoints_request", "request_id"),
        Index("ix_webhook_endpoints_owner", "owner_id"),
    )


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_endpoints.id"))
    event_key: Mapped[str] = mapped_column(String(120))
    event_type: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", **partial("state = 'pending'")),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )
