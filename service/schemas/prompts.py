"""API shapes of categories, prompt templates, presets and classification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service.schemas.rows import ROW_OBJECTS


class CategoryOut(BaseModel):
    name: str
    display_name: dict[str, str]
    description: dict[str, str]
    active: bool
    sort_order: int
    output_schema: str
    origin: str


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_prompt: str = Field(min_length=1, max_length=50_000)
    user_template: str = Field(min_length=1, max_length=20_000)
    examples: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    note: str | None = Field(None, max_length=500)


class TemplateCreate(TemplateIn):
    category: str
    language: str = Field(pattern="^(ru|en)$")


class TemplateOut(BaseModel):
    id: int
    category: str
    language: str
    version: int
    system_prompt: str
    user_template: str
    examples: list[dict[str, Any]]
    is_current: bool
    deleted: bool
    origin: str
    note: str | None
    created_by: str | None
    created_at: datetime


class PresetOut(BaseModel):
    id: int
    category: str
    name: str
    language: str
    title: str
    prompt: str
    sort_order: int


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # `prompt_text` is the seed's name for the same field.
    query_text: str = Field("", max_length=4_000, validation_alias=AliasChoices("query_text", "prompt_text"))
    input_data: Annotated[list[list[Any]] | None, ROW_OBJECTS] = None
    title: str | None = Field(None, max_length=300)
    description: str | None = Field(None, max_length=20_000)


class ClassifyOut(BaseModel):
    category: str
    confidence: float
    source: str
    message: str | None = None
    display_name: dict[str, str] | None = None
