"""API key shapes of /api/v1/keys. The secret appears only in the answer to a create."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Count = Field(None, ge=0, le=2_000_000_000)


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Count
    tokens_per_minute: int | None = Count
    daily_tokens: int | None = Count
    monthly_tokens: int | None = Count


class KeyCreate(KeyLimits):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "user"] = "user"


class KeyUpdate(KeyLimits):
    """Only the fields sent change; send null to clear a limit."""

    name: str | None = Field(None, min_length=1, max_length=200)
    role: Literal["admin", "user"] | None = None


class KeyOut(KeyLimits):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str
    name: str
    role: str
    prefix: str
    owner_id: str = Field(description="Requests submitted with this key carry this owner id (the key id).")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    secret: str = Field(description="The API key. Shown once: only a hash of it is stored.")
