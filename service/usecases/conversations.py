"""Conversation use-cases: a caller's threads (create, list, read, delete), the owner check at
submit, and the worker's side: the earlier turns for a prompt, the answer joining the thread.

A request names its conversation in the row's options (`conversation_id`), so no kind's columns
change. Functions here only flush: the route's session and the worker handler commit.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import conversations_repo as repo
from service.db.conversation_models import Conversation, ConversationMessage
from service.db.requests_repo import ClaimedRequest
from service.errors import NotFound
from service.llm.base import ChatMessage

OPTION = "conversation_id"  # the key in a request row's options


def _missing(conversation_id: uuid.UUID) -> NotFound:
    # Someone else's conversation reads exactly like a missing one: ids are not an oracle.
    return NotFound(f"No conversation with id {conversation_id}.")


async def create(session: AsyncSession, owner_id: str | None, title: str | None) -> Conversation:
    return await repo.insert(session, owner_id, title)


async def get(session: AsyncSession, conversation_id: uuid.UUID, owner_id: str | None) -> Conversation:
    row = await repo.find(session, conversation_id, owner_id)
    if row is None:
        raise _missing(conversation_id)
    return row


async def get_with_messages(
    session: AsyncSession, conversation_id: uuid.UUID, owner_id: str | None
) -> tuple[Conversation, list[ConversationMessage]]:
    row = await get(session, conversation_id, owner_id)
    return row, await repo.messages(session, row.id)


async def delete(session: AsyncSession, conversation_id: uuid.UUID, owner_id: str | None) -> None:
    row = await get(session, conversation_id, owner_id)
    await repo.remove(session, row.id)


async def list_page(
    session: AsyncSession, owner_id: str | None, limit: int, after: uuid.UUID | None
) -> tuple[list[Conversation], bool]:
    """The owner's conversations newest first, after the one with id `after` (the last of the
    previous page). Returns (page, whether more follow)."""
    keyset = None
    if after is not None:
        last = await get(session, after, owner_id)  # another owner's id: 404, not an oracle
        keyset = (last.created_at, last.id)
    rows = await repo.list_for_owner(session, owner_id, limit + 1, keyset)
    return rows[:limit], len(rows) > limit


# --- submit and worker -----------------------------------------------------------------------------


async def require_owned(
    sessions: async_sessionmaker[AsyncSession], conversation_id: uuid.UUID, owner_id: str | None
) -> None:
    """At submit: the named conversation is the caller's (another owner's: 404 like a missing one)."""
    async with sessions() as session:
        if await repo.find(session, conversation_id, owner_id) is None:
            raise _missing(conversation_id)


def with_conversation(options: Any, conversation_id: uuid.UUID | None) -> Any:
    """A row's options carrying the conversation the request belongs to."""
    if conversation_id is None:
        return options
    return {**(options if isinstance(options, dict) else {}), OPTION: str(conversation_id)}


def conversation_of(row: ClaimedRequest) -> uuid.UUID | None:
    value = row.options.get(OPTION) if isinstance(row.options, dict) else None
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


async def earlier_turns(
    sessions: async_sessionmaker[AsyncSession], conversation_id: uuid.UUID
) -> list[ChatMessage]:
    """The conversation's turns so far, oldest first (a short read of its own: no connection is
    held while the model thinks). A deleted conversation has none."""
    async with sessions() as session:
        rows = await repo.messages(session, conversation_id)
    return [ChatMessage("assistant" if r.role == "assistant" else "user", r.content) for r in rows]


async def add_answer(
    session: AsyncSession, conversation_id: uuid.UUID, request_id: uuid.UUID, question: str, answer: str
) -> bool:
    """The completed request's question and answer join its conversation (the caller commits)."""
    return await repo.append(
        session, conversation_id, request_id, [("user", question), ("assistant", answer)]
    )
