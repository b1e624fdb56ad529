"""ORM model of operator-console sessions (service/console). Kept in the database so that every API
process behind a load balancer knows every session; only a digest of the cookie's token is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, UTCDateTime


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    # SHA-256 of the random token in the cookie: a database read gives no usable cookie.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    # Every form of the session carries this token; a POST without it is refused.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_console_sessions_key", "key_id"),
        Index("ix_console_sessions_expires", "expires_at"),
    )
