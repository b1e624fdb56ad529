"""Build the system and user text of a request from its category's template.

Only data flows into templates: user text, the rendered table and a few derived numbers are
substituted by `templating.render`, which interprets nothing inside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.llm.base import ChatRequest
from service.pipeline import categories as cat
from service.pipeline.answer import answer_format
from service.pipeline.table import render_table
from service.pipeline.templating import render

LANGUAGE_NAMES = {"ru": "русский", "en": "English"}


@dataclass(frozen=True, slots=True)
class Example:
    """One few-shot pair: what the user asked (and the data) and the exact JSON answer expected."""

    query: str
    answer: dict[str, Any] | list[Any]
    input_range: str | None = None
    input_data: list[list[Any]] | None = None
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    category: str
    language: str
    system: str
    user: str
    examples: tuple[Example, ...] = ()
    version: int | None = None  # the database version, recorded on the request that used it
    template_id: int | None = None


@dataclass(frozen=True, slots=True)
class PromptInput:
    category: str
    query_text: str = ""
    input_range: str | None = None
    input_data: list[list[Any]] | None = None
    title: str | None = None
    description: str | None = None
    company_size: str | None = None
    industry: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    system: str
    user: str
    language: str
    table_truncated: bool = False
    template_version: int | None = None
    template_id: int | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def to_chat_request(self, **options: Any) -> ChatRequest:
        """ChatRequest for a backend; options are model/temperature/max_tokens/timeout."""
        return ChatRequest(system=self.system, user=self.user, context=dict(self.context), **options)


def detect_language(*texts: str | None) -> str:
    """'ru' when Cyrillic letters outnumber Latin ones, else 'en'. Formulas and numbers don't count."""
    cyrillic = latin = 0
    for text in texts:
        for char in text or "":
            if "а" <= char.lower() <= "я" or char in "ёЁ":
                cyrillic += 1
            elif "a" <= char.lower() <= "z":
                latin += 1
    return "en" if latin > cyrillic else "ru"


def build_prompt(
    template: PromptTemplate, request: PromptInput, *, table_token_budget: int
) -> RenderedPrompt:
    language = template.language
    table = render_table(
        request.input_range, request.input_data, token_budget=table_token_budget, language=language
    )
    values = {
        "query": request.query_text.strip(),
        "table": table.text,
        "range": request.input_range or table.address,
        "rows": str(table.rows_total),
        "columns": str(table.cols_total),
        "title": (request.title or "").strip(),
        "description": (request.description or "").strip(),
        "company_size": (request.company_size or "").strip() or "—",
        "industry": (request.industry or "").strip() or "—",
        "language": LANGUAGE_NAMES.get(language, language),
        "answer_format": answer_format(template.category),
        "category": template.category,
    }
    system = render(template.system, values)
    if template.examples:
        system += "\n\n" + _examples_of(template, table_token_budget)
    user = render(template.user, values)
    context = {
        "kind": "process_analysis" if template.category == cat.PROCESS_CATEGORY else "spreadsheet",
        "category": template.category,
        "language": language,
        "query_text": request.query_text,
        "input_range": request.input_range,
        "input_data": request.input_data,
        "title": request.title,
        "description": request.description,
    }
    return RenderedPrompt(
        system=system,
        user=user,
        language=language,
        table_truncated=table.truncated,
        template_version=template.version,
        template_id=template.template_id,
        context=context,
    )


# Rendered examples per template object. They depend on nothing but the template and the budget,
# and a worker reuses one template object for many requests (usecases/prompt_builder.py caches them), so
# their tables are rendered once per template instead of once per request. Keyed by identity, with
# the template kept in the entry so that its id cannot be reused while the entry exists.
_EXAMPLES_CACHE_SIZE = 64
_rendered_examples: dict[int, tuple[PromptTemplate, int, str]] = {}


def _examples_of(template: PromptTemplate, budget: int) -> str:
    cached = _rendered_examples.get(id(template))
    if cached is not None and cached[0] is template and cached[1] == budget:
        return cached[2]
    text = _render_examples(template, template.language, budget)
    if len(_rendered_examples) >= _EXAMPLES_CACHE_SIZE:
        _rendered_examples.clear()  # templates are replaced every few seconds at most: start afresh
    _rendered_examples[id(template)] = (template, budget, text)
    return text


def _render_examples(template: PromptTemplate, language: str, budget: int) -> str:
    heading = "Примеры" if language == "ru" else "Examples"
    ask, data, reply = ("Запрос", "Данные", "Ответ") if language == "ru" else ("Request", "Data", "Answer")
    parts = [f"## {heading}"]
    for example in template.examples:
        lines = [f"{ask}: {example.query}"]
        if example.title or example.description:
            lines.append(f"{data}: {example.title or ''}\n{example.description or ''}".rstrip())
        if example.input_data:
            # Examples are short by construction; a quarter of the budget is a safety cap only.
            table = render_table(
                example.input_range, example.input_data, token_budget=budget // 4, language=language
            )
            lines.append(f"{data} ({table.address}):\n{table.text}")
        lines.append(f"{reply}: {json.dumps(example.answer, ensure_ascii=False)}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
