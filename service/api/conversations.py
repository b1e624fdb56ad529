"""Conversations: a caller's threads of follow-up requests (their own only, like everything else)."""

from __future__ import annotations

import uuid
from typing import Literal, cast

from fastapi import APIRouter, Query, Response

from service.api.deps import OwnerDep, SessionDep
from service.db.conversation_models import Conversation
from service.schemas.conversations import (
    ConversationDetail,
    ConversationIn,
    ConversationList,
    ConversationOut,
    MessageOut,
)
from service.usecases import conversations as service

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


def conversation_out(row: Conversation) -> ConversationOut:
    return ConversationOut(id=row.id, title=row.title, created_at=row.created_at, updated_at=row.updated_at)


@router.post("", status_code=201, response_model=ConversationOut, summary="Start a conversation")
async def create_conversation(
    session: SessionDep, owner_id: OwnerDep, payload: ConversationIn | None = None
) -> ConversationOut:
    row = await service.create(session, owner_id, payload.title if payload else None)
    return conversation_out(row)


@router.get("", response_model=ConversationList, summary="Your conversations, newest first")
async def list_conversations(
    session: SessionDep,
    owner_id: OwnerDep,
    limit: int = Query(20, ge=1, le=100),
    after: uuid.UUID | None = Query(None, description="id of the last conversation of the previous page"),
) -> ConversationList:
    rows, more = await service.list_page(session, owner_id, limit, after)
    return ConversationList(data=[conversation_out(r) for r in rows], has_more=more)


@router.get("/{conversation_id}", response_model=ConversationDetail, summary="A conversation and its turns")
async def get_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner_id: OwnerDep
) -> ConversationDetail:
    row, messages = await service.get_with_messages(session, conversation_id, owner_id)
    return ConversationDetail(
        **conversation_out(row).model_dump(),
        messages=[
            MessageOut(
                role=cast(Literal["user", "assistant"], m.role),
                content=m.content,
                request_id=m.request_id,
                created_at=m.created_at,
            )
            for m in messages
        ],
    )


@router.delete("/{conversation_id}", status_code=204, summary="Delete a conversation and its turns")
async def delete_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner_id: OwnerDep
) -> Response:
    await service.delete(session, conversation_id, owner_id)
    return Response(status_code=204)
