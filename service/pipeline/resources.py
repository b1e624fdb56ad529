"""Load and validate the shipped categories, templates, examples and presets from resources/.

The files are the project's defaults; the database holds the live copies (see `python -m service
seed`). Loading validates everything a template will need at render time, so a typo in a shipped
YAML file fails the test-suite instead of a request.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.pipeline import categories as cat
from service.pipeline.prompt import Example, PromptTemplate
from service.pipeline.templating import placeholders

RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"
LANGUAGES: tuple[str, ...] = ("ru", "en")
SchemaKind = Literal["table", "chart", "histogram", "text", "process_analysis"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localised(_Strict):
    ru: str = Field(min_length=1)
    en: str = Field(min_length=1)


class CategoryDef(_Strict):
    name: str
    display_name: Localised
    description: Localised
    active: bool
    sort_order: int
    output_schema: SchemaKind

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in cat.CATEGORY_NAMES:
            raise ValueError(f"{value!r} is not in service.pipeline.categories.CATEGORY_NAMES")
        return value


class TemplateText(_Strict):
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)

    @field_validator("system", "user")
    @classmethod
    def _renderable(cls, value: str) -> str:
        placeholders(value)  # raises on unknown placeholders and stray braces
        return value.strip()


class ExampleDef(_Strict):
    language: Literal["ru", "en"]
    query: str
    answer: dict[str, Any] | list[Any]
    input_range: str | None = None
    input_data: list[list[Any]] | None = None
    title: str | None = None
    description: str | None = None


class PresetText(_Strict):
    title: str = Field(min_length=1)
    prompt: str = Field(min_length=1)


class PresetDef(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    ru: PresetText
    en: PresetText


class CategoryPrompts(_Strict):
    category: str
    templates: dict[Literal["ru", "en"], TemplateText]
    examples: list[ExampleDef] = Field(default_factory=list)
    presets: list[PresetDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both_languages(self) -> CategoryPrompts:
        missing = set(LANGUAGES) - set(self.templates)
        if missing:
            raise ValueError(f"templates missing for languages {sorted(missing)}")
        names = [preset.name for preset in self.presets]
        if len(names) != len(set(names)):
            raise ValueError("preset names must be unique within a category")
        return self

    def template(self, language: str) -> PromptTemplate:
        """The shipped template as the renderer takes it (examples in its language first)."""
        text = self.templates.get(language) or self.templates["ru"]  # type: ignore[call-overload]
        chosen = [e for e in self.examples if e.language == language] or list(self.examples)
        examples = tuple(
            Example(
                query=e.query,
                answer=e.answer,
                input_range=e.input_range,
                input_data=e.input_data,
                title=e.title,
                description=e.description,
            )
            for e in chosen
        )
        return PromptTemplate(
            category=self.category,
            language=language if language in self.templates else "ru",
            system=text.system,
            user=text.user,
            examples=examples,
        )


class Resources(_Strict):
    categories: list[CategoryDef]
    aliases: dict[str, str]
    prompts: dict[str, CategoryPrompts]

    def category(self, name: str) -> CategoryDef:
        return next(item for item in self.categories if item.name == name)


def load_resources(directory: Path | None = None) -> Resources:
    base = directory or RESOURCES_DIR
    raw = yaml.safe_load((base / "categories.yaml").read_text(encoding="utf-8"))
    prompts: dict[str, CategoryPrompts] = {}
    for path in sorted((base / "prompts").glob("*.yaml")):
        item = CategoryPrompts.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        if item.category != path.stem:
            raise ValueError(f"{path.name}: category {item.category!r} does not match the file name")
        prompts[item.category] = item
    resources = Resources(categories=raw["categories"], aliases=raw.get("aliases") or {}, prompts=prompts)
    missing = {c.name for c in resources.categories} - set(prompts)
    if missing:
        raise ValueError(f"no prompt file for categories {sorted(missing)}")
    return resources


@lru_cache(maxsize=1)
def shipped_resources() -> Resources:
    """The resources/ directory of this checkout, loaded once per process."""
    return load_resources()
