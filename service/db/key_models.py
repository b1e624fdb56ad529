"""ORM model of API keys. A key is its own owner: the requests it submits carry its id as owner_id.

Only a SHA-256 digest of the secret is stored (the secret is 256 random bits, so a slow password
hash would add nothing) and a short visible prefix that lets people tell their keys apart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, JSONType, UTCDateTime


class Role:
    ADMIN = "admin"
    USER = "user"

    ALL = (ADMIN, USER)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    # Limits; NULL means the settings' default (requests per minute) or no limit (the others).
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    daily_tokens: Mapped[int | None] = mapped_column(Integer)
    monthly_tokens: Mapped[int | None] = mapped_column(Integer)
    # Days a finished request of this key is kept; only a figure below RETENTION_DAYS has effect.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    # Models this key may name (NULL: any the settings allow; migration 0009).
    allowed_models: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def owner_id(self) -> str:
        """A key is its own owner: the owner_id of the requests it submits."""
        return self.id
