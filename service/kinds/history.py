"""A conversation's earlier turns in a kind's prompt: one helper for every kind.

The kind builds its prompt as if the request stood alone; this puts the conversation's earlier
turns between its system turns and its own turns. What the kind built (the range data, the
document excerpt, the caller's messages) is never cut: the earlier turns get what the token budget
leaves, newest first, so the oldest are the ones dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import Field

from service.llm.base import ChatMessage, ChatRequest, estimate_tokens


def with_history(chat: ChatRequest, turns: Sequence[ChatMessage], budget: int) -> ChatRequest:
    """`chat` with as many of the latest `turns` (oldest first) as fit in `budget` tokens, counted
    together with the request's own messages."""
    if not turns:
        return chat
    own = chat.conversation()
    room = budget - sum(estimate_tokens(m.content) for m in own)
    kept: list[ChatMessage] = []
    for turn in reversed(turns):
        cost = estimate_tokens(turn.content)
        if cost > room:
            break
        kept.append(turn)
        room -= cost
    kept.reverse()
    # History starts at a user turn: an answer without its question only confuses the model.
    while kept and kept[0].role != "user":
        kept.pop(0)
    if not kept:
        return chat
    system = tuple(m for m in own if m.role == "system")
    rest = tuple(m for m in own if m.role != "system")
    return replace(chat, messages=(*system, *kept, *rest))


def conversation_field() -> Any:
    """The submit body's `conversation_id` (spreadsheet, text and chat kinds)."""
    return Field(
        None,
        description="A conversation of yours (POST /api/v1/conversations): the prompt carries its "
        "earlier turns, and the answer joins it once the request completes.",
    )


ConversationId = uuid.UUID
