"""All SQL about categories, prompt templates and presets. Callers own the session and commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.models import utcnow
from service.db.prompt_models import Category, Preset, PromptTemplate

# --- categories --------------------------------------------------------------------------------


async def list_categories(session: AsyncSession, *, include_inactive: bool = False) -> Sequence[Category]:
    stmt = select(Category).order_by(Category.sort_order, Category.name)
    if not include_inactive:
        stmt = stmt.where(Category.active.is_(True))
    return (await session.scalars(stmt)).all()


async def get_category(session: AsyncSession, name: str) -> Category | None:
    return await session.get(Category, name)


async def insert_category(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Category).values(updated_at=utcnow(), **values))


async def update_category(session: AsyncSession, name: str, values: dict[str, Any]) -> None:
    await session.execute(update(Category).where(Category.name == name).values(updated_at=utcnow(), **values))


# --- templates ---------------------------------------------------------------------------------


async def current_template(session: AsyncSession, category: str, language: str) -> PromptTemplate | None:
    stmt = select(PromptTemplate).where(
        PromptTemplate.category == category,
        PromptTemplate.language == language,
        PromptTemplate.is_current.is_(True),
    )
    return (await session.scalars(stmt)).first()


async def count_templates(session: AsyncSession, category: str, language: str) -> int:
    stmt = select(func.count()).where(
        PromptTemplate.category == category, PromptTemplate.language == language
    )
    return int((await session.scalar(stmt)) or 0)


async def get_template(session: AsyncSession, template_id: int) -> PromptTemplate | None:
    return await session.get(PromptTemplate, template_id)


async def list_templates(
    session: AsyncSession, *, category: str | None = None, language: str | None = None, history: bool = False
) -> Sequence[PromptTemplate]:
    stmt = select(PromptTemplate).order_by(
        PromptTemplate.category, PromptTemplate.language, PromptTemplate.version.desc()
    )
    if category:
        stmt = stmt.where(PromptTemplate.category == category)
    if language:
        stmt = stmt.where(PromptTemplate.language == language)
    if not history:
        stmt = stmt.where(PromptTemplate.is_current.is_(True))
    return (await session.scalars(stmt)).all()


async def add_template_version(session: AsyncSession, values: dict[str, Any]) -> PromptTemplate:
    """Append a version for (category, language) and make it the current one.

    Two concurrent edits compute the same next version; the unique constraint makes the second
    fail with IntegrityError instead of silently forking the history.
    """
    category, language = values["category"], values["language"]
    latest = await session.scalar(
        select(func.max(PromptTemplate.version)).where(
            PromptTemplate.category == category, PromptTemplate.language == language
        )
    )
    await session.execute(
        update(PromptTemplate)
        .where(PromptTemplate.category == category, PromptTemplate.language == language)
        .values(is_current=False)
    )
    row = PromptTemplate(
        version=(latest or 0) + 1, is_current=True, deleted=False, created_at=utcnow(), **values
    )
    session.add(row)
    await session.flush()
    return row


async def delete_template(session: AsyncSession, row: PromptTemplate) -> None:
    """Mark a version deleted (history is kept); the newest remaining version becomes current."""
    was_current = row.is_current
    await session.execute(
        update(PromptTemplate).where(PromptTemplate.id == row.id).values(deleted=True, is_current=False)
    )
    if not was_current:
        return
    successor = await session.scalar(
        select(PromptTemplate.id)
        .where(
            PromptTemplate.category == row.category,
            PromptTemplate.language == row.language,
            PromptTemplate.deleted.is_(False),
            PromptTemplate.id != row.id,
        )
        .order_by(PromptTemplate.version.desc())
        .limit(1)
    )
    if successor is not None:
        await session.execute(
            update(PromptTemplate).where(PromptTemplate.id == successor).values(is_current=True)
        )


# --- presets -----------------------------------------------------------------------------------


async def list_presets(
    session: AsyncSession, *, category: str | None = None, language: str | None = None
) -> Sequence[Preset]:
    stmt = (
        select(Preset).where(Preset.active.is_(True)).order_by(Preset.category, Preset.sort_order, Preset.id)
    )
    if category:
        stmt = stmt.where(Preset.category == category)
    if language:
        stmt = stmt.where(Preset.language == language)
    return (await session.scalars(stmt)).all()


async def get_preset(session: AsyncSession, category: str, name: str, language: str) -> Preset | None:
    stmt = select(Preset).where(Preset.category == category, Preset.name == name, Preset.language == language)
    return (await session.scalars(stmt)).first()


async def insert_preset(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Preset).values(updated_at=utcnow(), **values))


async def update_preset(session: AsyncSession, preset_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(Preset).where(Preset.id == preset_id).values(updated_at=utcnow(), **values))
