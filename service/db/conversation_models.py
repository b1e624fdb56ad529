"""ORM models of conversations: a caller's named thread of requests, and its turns in order."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, UTCDateTime


class Conversation(Base):
    """One owner's thread: follow-up requests that name it carry its earlier turns."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # The caller's own, newest first (the keyset is (created_at, id)).
    __table_args__ = (Index("ix_conversations_owner_created", "owner_id", "created_at", "id"),)


class ConversationMessage(Base):
    """One turn: the user's words of a completed request, or the assistant's answer to them.
    Both are written when the request completes, in the worker's unit of work."""

    __tablename__ = "conversation_messages"

    # A sequence, not a timestamp: two turns written in one transaction keep their order.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    # The request the turn belongs to (no foreign key: request retention must not erase history).
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
