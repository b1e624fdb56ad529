"""`python -m service seed`: load resources/ into the database without clobbering operator edits.

Rules, per item (category, template per language, preset per language):
- missing → added;
- present, shipped by us, and the shipped content changed → updated (templates: a new version);
- present and changed by an operator through the API → left alone;
- never deleted, even if it disappeared from resources/.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db import prompts_repo as repo
from service.db.prompt_models import Origin
from service.db.unit_of_work import transaction
from service.pipeline.resources import LANGUAGES, Resources, shipped_resources
from service.runtime import open_runtime


@dataclass
class SeedReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept_operator: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated)


def content_hash(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def seed(session: AsyncSession, resources: Resources) -> SeedReport:
    report = SeedReport()
    for item in resources.categories:
        values = {
            "display_name_ru": item.display_name.ru,
            "display_name_en": item.display_name.en,
            "description_ru": item.description.ru,
            "description_en": item.description.en,
            "active": item.active,
            "sort_order": item.sort_order,
            "output_schema": item.output_schema,
        }
        await _seed_category(session, item.name, values, report)
    await session.flush()  # templates and presets reference categories
    for name, prompts in resources.prompts.items():
        for language in LANGUAGES:
            text = prompts.templates[language]  # type: ignore[index]
            examples = [e.model_dump(exclude_none=True) for e in prompts.examples if e.language == language]
            values = {"system_prompt": text.system, "user_template": text.user, "examples": examples}
            await _seed_template(session, name, language, values, report)
        for order, preset in enumerate(prompts.presets):
            for language in LANGUAGES:
                texts = getattr(preset, language)
                values = {"title": texts.title, "prompt": texts.prompt, "sort_order": order}
                await _seed_preset(session, name, preset.name, language, values, report)
    return report


async def _seed_category(
    session: AsyncSession, name: str, values: dict[str, Any], report: SeedReport
) -> None:
    digest = content_hash(values)
    row = await repo.get_category(session, name)
    label = f"category {name}"
    if row is None:
        await repo.insert_category(
            session, {"name": name, "origin": Origin.SHIPPED, "shipped_hash": digest, **values}
        )
        report.added.append(label)
    elif row.origin == Origin.OPERATOR:
        report.kept_operator.append(label)
    elif row.shipped_hash != digest:
        await repo.update_category(session, name, {"shipped_hash": digest, **values})
        report.updated.append(label)


async def _seed_template(
    session: AsyncSession, category: str, language: str, values: dict[str, Any], report: SeedReport
) -> None:
    digest = content_hash(values)
    label = f"template {category}/{language}"
    fields = {"category": category, "language": language, "origin": Origin.SHIPPED, "shipped_hash": digest}
    if await repo.count_templates(session, category, language) == 0:
        await repo.add_template_version(session, {**fields, **values, "note": "shipped"})
        report.added.append(label)
        return
    current = await repo.current_template(session, category, language)
    if current is None or current.origin == Origin.OPERATOR:
        # An operator edited it, or deliberately deleted every version: their decision stands.
        report.kept_operator.append(label)
    elif current.shipped_hash != digest:
        await repo.add_template_version(session, {**fields, **values, "note": "shipped update"})
        report.updated.append(label)


async def _seed_preset(
    session: AsyncSession, category: str, name: str, language: str, values: dict[str, Any], report: SeedReport
) -> None:
    digest = content_hash(values)
    label = f"preset {category}/{name}/{language}"
    row = await repo.get_preset(session, category, name, language)
    if row is None:
        await repo.insert_preset(
            session,
            {
                "category": category,
                "name": name,
                "language": language,
                "origin": Origin.SHIPPED,
                "shipped_hash": digest,
                **values,
            },
        )
        report.added.append(label)
    elif row.origin == Origin.OPERATOR:
        report.kept_operator.append(label)
    elif row.shipped_hash != digest:
        await repo.update_preset(session, row.id, {"shipped_hash": digest, **values})
        report.updated.append(label)


async def seed_database(settings: Settings) -> SeedReport:
    """The CLI entry point (`seed`, and `up` after migrating)."""
    async with open_runtime(settings, role="cli") as rt, transaction(rt.sessions) as session:
        report = await seed(session, shipped_resources())
    logger.info(
        "seeded prompts: {} added, {} updated, {} operator edits kept",
        len(report.added),
        len(report.updated),
        len(report.kept_operator),
    )
    return report
