"""API shapes of conversations: a caller's thread and its turns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.fields import Text


class ConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Text(max_length=300)] | None = Field(None, description="A name for the thread.")


class ConversationOut(BaseModel):
    id: uuid.UUID
    title: str | None
    created_at: datetime
    updated_at: datetime


class ConversationList(BaseModel):
    data: list[ConversationOut]
    has_more: bool = Field(description="More follow: pass the last id as `after`.")


class MessageOut(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    request_id: uuid.UUID | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut] = Field(description="The user's turns and the answers, in order.")
