"""API key shapes of /api/v1/keys. The secret appears only in the answer to a create."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db.key_models import ApiKey
from service.schemas.fields import ColumnInt, ColumnText, Text


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: Annotated[int, ColumnInt(ApiKey.requests_per_minute, ge=0, strict=True)] | None = (
        None
    )
    tokens_per_minute: Annotated[int, ColumnInt(ApiKey.tokens_per_minute, ge=0, strict=True)] | None = None
    daily_tokens: Annotated[int, ColumnInt(ApiKey.daily_tokens, ge=0, strict=True)] | None = None
    monthly_tokens: Annotated[int, ColumnInt(ApiKey.monthly_tokens, ge=0, strict=True)] | None = None
    # Days a finished request is kept (shorter than RETENTION_DAYS only; null: the setting).
    retention_days: Annotated[int, ColumnInt(ApiKey.retention_days, ge=1, strict=True)] | None = None
    allowed_models: list[Annotated[str, Text(max_length=128)]] | None = Field(
        None,
        max_length=100,
        description="Models this key may name (null: any that LLM_ALLOWED_MODELS allows).",
    )


class KeyCreate(KeyLimits):
    name: Annotated[str, ColumnText(ApiKey.name, min_length=1)]
    role: Literal["admin", "user"] = "user"


class KeyUpdate(KeyLimits):
    """Only the fields sent change; send null to clear a limit."""

    name: Annotated[str, ColumnText(ApiKey.name, min_length=1)] | None = None
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
