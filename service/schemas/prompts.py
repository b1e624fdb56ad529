"""API shapes of categories, prompt templates, presets and classification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service.db.prompt_models import PromptTemplate as TemplateRow
from service.schemas.fields import ColumnText, LanguageCode, SafeJson, SafeJsonObject, Text
from service.schemas.rows import row_objects


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

    system_prompt: Annotated[str, Text(min_length=1, max_length=50_000)]
    user_template: Annotated[str, Text(min_length=1, max_length=20_000)]
    examples: list[SafeJsonObject] = Field(default_factory=list, max_length=20)
    note: Annotated[str, ColumnText(TemplateRow.note)] | None = None


class TemplateCreate(TemplateIn):
    category: Annotated[str, ColumnText(TemplateRow.category, min_length=1)]
    language: LanguageCode


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
    query_text: Annotated[str, Text(max_length=4_000)] = Field(
        "", validation_alias=AliasChoices("query_text", "prompt_text")
    )
    input_data: Annotated[list[list[SafeJson]] | None, row_objects(SafeJson)] = None
    title: Annotated[str, Text(max_length=300)] | None = None
    description: Annotated[str, Text(max_length=20_000)] | None = None


class ClassifyOut(BaseModel):
    category: str
    confidence: float
    source: str
    message: str | None = None
    display_name: dict[str, str] | None = None
