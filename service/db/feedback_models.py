"""ORM model of users' ratings of answers (the seed's good/bad rating with a comment)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, UTCDateTime


class Rating:
    GOOD = "good"
    BAD = "bad"

    ALL = (GOOD, BAD)


class Feedback(Base):
    """One caller's rating of one request's answer; rating again replaces it."""

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("requests.id", ondelete="CASCADE"))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    # The answer text the user saw and rated (the seed's `text_response`), when the client sends it.
    text_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # One rating per request and caller; anonymous callers share the empty owner.
        Index("uq_feedback_request_owner", "request_id", func.coalesce(owner_id, ""), unique=True),
    )
