"""The answer cache's table: one row per cache key, first a lead (single flight), then the answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, JSONType, UTCDateTime


class AnswerCacheEntry(Base):
    __tablename__ = "answer_cache"

    # SHA-256 of (scope, kind, backend, model, rendered messages, sampling parameters).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "pending": `leader_id` is calling the LLM until `lease_expires_at`; "ready": the answer below.
    status: Mapped[str] = mapped_column(String(16))
    leader_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a ready answer's TTL
    result: Mapped[Any | None] = mapped_column(JSONType)
    category: Mapped[str | None] = mapped_column(String(64))
    template_version: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    llm_backend: Mapped[str | None] = mapped_column(String(32))
    llm_model: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
