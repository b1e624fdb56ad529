"""Kind `process_analysis`: a business process described in words, analysed for automation.

Always the `process-analysis` category's template; the answer is a scored analysis validated
against that category's schema (one repair round), and it has a Markdown report.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field

from service.config import Settings
from service.db.models import AnalysisRequest as Row
from service.db.records import RequestRecord
from service.db.requests_repo import ClaimedRequest
from service.kinds.base import BuiltPrompt, Kind, KindInput, Problem, Prompts, too_long
from service.kinds.dryrun_intents import language, say
from service.llm.base import ChatRequest, ChatResponse
from service.pipeline.answer import parse_answer
from service.pipeline.categories import PROCESS_CATEGORY
from service.pipeline.prompt import detect_language
from service.pipeline.report import render_report
from service.pipeline.report_pdf import render_report_pdf
from service.schemas.fields import ColumnText, NonBlankText, Text
from service.schemas.requests import IdempotencyKey
from service.schemas.webhooks import WebhookSpec


class ProcessAnalysisInput(KindInput):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["process_analysis"]
    title: Annotated[str, ColumnText(Row.title, min_length=1, strip=True)]
    description: NonBlankText = Field(description="The business process, as its owner describes it.")
    company_size: Annotated[str, Text(max_length=64)] | None = None
    industry: Annotated[str, Text(max_length=128)] | None = None
    language: Literal["ru", "en"] | None = None
    idempotency_key: IdempotencyKey | None = None
    webhook: WebhookSpec | None = Field(None, description="Signed POSTs when the request ends.")
    cache: bool = Field(True, description="false: never answered from the answer cache.")


def dryrun_analysis(context: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid analysis derived from the description alone, in its language."""
    description = str(context.get("description", ""))
    lang = language(f"{context.get('title', '')} {description}")
    title = str(context.get("title", "")) or say(lang, "process")
    words = len(description.split())
    # Longer, more manual descriptions score as more automatable: a stable, input-derived number.
    manual_markers = sum(
        description.lower().count(m) for m in ("manual", "excel", "email", "вручную", "почт")
    )
    score = max(1, min(10, 3 + words // 40 + manual_markers))
    hours = float(min(160, 4 + words // 5 + 6 * manual_markers))
    return {
        "score": score,
        "problem": say(lang, "problem", title=title[:80]),
        "solution": {
            "description": say(lang, "solution"),
            "tools": ["n8n", "Python"] if score >= 6 else ["Zapier"],
        },
        "savings": {"hours_per_month": hours, "description": say(lang, "savings")},
        "implementation": [say(lang, key) for key in ("step1", "step2", "step3")],
    }


class ProcessAnalysis(Kind):
    name = "process_analysis"
    Input = ProcessAnalysisInput
    repairs = True
    examples = {  # noqa: RUF012 (read only)
        "process_analysis": {
            "summary": "Business process to analyse",
            "value": {
                "kind": "process_analysis",
                "title": "Invoice approval",
                "description": "Invoices arrive by email, are typed into Excel by hand and approved "
                "by two managers over email.",
                "company_size": "50-200",
            },
        }
    }

    def limit_problems(self, body: ProcessAnalysisInput, settings: Settings) -> list[Problem]:
        return too_long("description", body.description, settings.max_description_chars)

    def category(self, body: ProcessAnalysisInput) -> str | None:
        return PROCESS_CATEGORY

    def to_row(self, body: ProcessAnalysisInput, category: str | None) -> dict[str, Any]:
        options = {
            k: v
            for k, v in (
                ("company_size", body.company_size),
                ("industry", body.industry),
                ("language", body.language),
            )
            if v
        }
        return {
            "category": category,
            "title": body.title,
            "description": body.description,
            "options": options or None,
        }

    async def prompt(self, row: ClaimedRequest, prompts: Prompts) -> BuiltPrompt:
        context = {
            "kind": self.name,
            "title": row.title,
            "description": row.description,
            **(row.options if isinstance(row.options, dict) else {}),
        }
        return await prompts.templated(self, row, context, row.category or PROCESS_CATEGORY)

    def result(self, built: BuiltPrompt, response: ChatResponse) -> Any:
        return parse_answer(built.category or PROCESS_CATEGORY, response.text)

    def dryrun(self, request: ChatRequest) -> str:
        return orjson.dumps(dryrun_analysis(request.context)).decode()

    def report(self, row: RequestRecord, language: str | None) -> str | None:
        if not isinstance(row.result, dict):
            return None
        lang = language or detect_language(row.title, row.description)
        return render_report(row.result, title=row.title, language=lang)

    def report_pdf(self, row: RequestRecord, language: str | None) -> bytes | None:
        if not isinstance(row.result, dict):
            return None
        lang = language or detect_language(row.title, row.description)
        return render_report_pdf(row.result, title=row.title, language=lang)
