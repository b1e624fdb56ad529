"""ORM model of operator-console sessions (service/console). Kept in the database so that every API
process behind a load balancer knows every session; only a digest of the cookie's token is stored."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String
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


class UsageDay(Base):
    """Requests and tokens of one UTC day, owner and model: the console's usage figures for days
    whose requests are all final, so a 90-day chart does not re-read 90 days of requests. Filled by
    the console on first view of a closed day (service/db/console_repo.py); "" stands for none."""

    __tablename__ = "usage_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)


class UsageDayRolled(Base):
    """The days already summed into usage_days (a day with no requests has no rows there)."""

    __tablename__ = "usage_days_rolled"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
