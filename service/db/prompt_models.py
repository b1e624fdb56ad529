"""ORM models of categories, versioned prompt templates and presets.

Every row records its `origin`: "shipped" rows come from resources/ and may be updated by a later
seed; "operator" rows were written through the API and a seed never touches them. `shipped_hash`
is the hash of the shipped content a row was last seeded from, so a seed can tell "unchanged" from
"the project ships something new".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, JSONType, UTCDateTime


class Origin:
    SHIPPED = "shipped"
    OPERATOR = "operator"


class Category(Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name_ru: Mapped[str] = mapped_column(String(200))
    display_name_en: Mapped[str] = mapped_column(String(200))
    description_ru: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    output_schema: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16), default=Origin.SHIPPED)
    shipped_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PromptTemplate(Base):
    """One version of a category's template in one language. Edits add versions; none is rewritten."""

    __tablename__ = "prompt_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(64), ForeignKey("categories.name"))
    language: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    system_prompt: Mapped[str] = mapped_column(Text)
    user_template: Mapped[str] = mapped_column(Text)
    examples: Mapped[Any] = mapped_column(JSONType)
    # Exactly one current version per (category, language) unless an operator deleted them all.
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(16))
    shipped_hash: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("category", "language", "version", name="uq_prompt_templates_version"),
        Index("ix_prompt_templates_current", "category", "language", "is_current"),
    )


class Preset(Base):
    """A ready-made request a plugin offers its users for a category (the seed's "presets")."""

    __tablename__ = "presets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(64), ForeignKey("categories.name"))
    name: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(16), default=Origin.SHIPPED)
    shipped_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("category", "name", "language", name="uq_presets_name"),)
