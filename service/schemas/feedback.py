"""API shapes of feedback: a rating (good/bad) and a comment on one request's answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from service.schemas.fields import Text

# What clients send for a rating: the seed's good/bad, thumbs, likes, 1/0, booleans.
_RATING_WORDS = {
    "good": "good", "bad": "bad", "up": "good", "down": "bad",
    "thumbs_up": "good", "thumbs_down": "bad", "thumbsup": "good", "thumbsdown": "bad",
    "like": "good", "dislike": "bad", "positive": "good", "negative": "bad",
    "+1": "good", "-1": "bad", "1": "good", "0": "bad", "true": "good", "false": "bad",
    "👍": "good", "👎": "bad",
}  # fmt: skip


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rating: Literal["good", "bad"] = Field(
        description="good or bad; also 1/0, true/false, up/down, thumbs_up/thumbs_down, like/dislike."
    )
    comment: Annotated[str, Text(max_length=4_000)] | None = None
    text_response: Annotated[str, Text(max_length=100_000)] | None = Field(
        None, description="The answer text the user rated."
    )

    @field_validator("rating", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "good" if value else "bad"
        if isinstance(value, int) and value in (1, 0, -1):
            return "good" if value == 1 else "bad"
        if isinstance(value, str):
            word = value.strip().lower().replace("-", "_").replace(" ", "_")
            if word in _RATING_WORDS:
                return _RATING_WORDS[word]
            if value.strip() in _RATING_WORDS:  # "+1", "-1" and the emoji
                return _RATING_WORDS[value.strip()]
        return value


class SeedFeedbackIn(FeedbackIn):
    """The seed's POST /api/v1/feedback body: the request is named in it."""

    ai_request_id: uuid.UUID = Field(validation_alias=AliasChoices("ai_request_id", "request_id"))


class FeedbackOut(BaseModel):
    id: uuid.UUID
    request_id: uuid.UUID
    rating: str
    comment: str | None
    text_response: str | None
    created_at: datetime
    updated_at: datetime
