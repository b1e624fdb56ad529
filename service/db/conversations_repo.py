"""All SQL about conversations. Callers own the session and decide when to commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batches_repo import owned_by
from service.db.conversation_models import Conversation, ConversationMessage
from service.db.models import utcnow


async def insert(session: AsyncSession, owner_id: str | None, title: str | None) -> Conversation:
    now = utcnow()
    row = Conversation(id=uuid.uuid4(), owner_id=owner_id, title=title, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def find(
    session: AsyncSession, conversation_id: uuid.UUID, owner_id: str | None
) -> Conversation | None:
    """The owner's conversation; another owner's is None, exactly like a missing one."""
    stmt = select(Conversation).where(
        Conversation.id == conversation_id, owned_by(Conversation.owner_id, owner_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_owner(
    session: AsyncSession, owner_id: str | None, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[Conversation]:
    """Newest first; `after` is the (created_at, id) of the last one of the previous page."""
    c = Conversation
    stmt = select(c).where(owned_by(c.owner_id, owner_id))
    if after is not None:
        created, last_id = after
        stmt = stmt.where((c.created_at < created) | ((c.created_at == created) & (c.id < last_id)))
    stmt = stmt.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def messages(session: AsyncSession, conversation_id: uuid.UUID) -> list[ConversationMessage]:
    stmt = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.id)
    )
    return list((await session.execute(stmt)).scalars())


async def append(
    session: AsyncSession, conversation_id: uuid.UUID, request_id: uuid.UUID, turns: Sequence[tuple[str, str]]
) -> bool:
    """Add (role, content) turns in order; False when the conversation is gone (deleted meanwhile).
    The row lock orders concurrent appends with a delete of the conversation."""
    stmt = select(Conversation).where(Conversation.id == conversation_id).with_for_update()
    conversation = (await session.execute(stmt)).scalar_one_or_none()
    if conversation is None:
        return False
    now = utcnow()
    for role, content in turns:
        session.add(
            ConversationMessage(
                conversation_id=conversation_id,
                role=role,
                content=content,
                request_id=request_id,
                created_at=now,
            )
        )
        await session.flush()  # one at a time: the sequence gives them their order
    conversation.updated_at = now
    await session.flush()
    return True


async def remove(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    # Turns go by the foreign key's cascade; explicit too, for SQLite without foreign keys enforced.
    await session.execute(
        delete(ConversationMessage).where(ConversationMessage.conversation_id == conversation_id)
    )
    await session.execute(delete(Conversation).where(Conversation.id == conversation_id))


async def delete_for_owner(session: AsyncSession, owner_id: str) -> int:
    """Every conversation of an owner (erasure of the owner's data)."""
    ids = select(Conversation.id).where(Conversation.owner_id == owner_id)
    await session.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(ids)))
    result = await session.execute(delete(Conversation).where(Conversation.owner_id == owner_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
