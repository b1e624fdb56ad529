"""Turn a model's raw text into a validated result for its category, or say precisely why not."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import ValidationError

from service.errors import AppError
from service.llm.base import ChatRequest
from service.pipeline import categories as cat
from service.pipeline.jsonextract import JSONNotFound, extract_json
from service.pipeline.schemas import SCHEMA_MODELS

# Which output schema each category's answer must satisfy. resources/categories.yaml repeats this
# for clients to read; a unit test keeps the two in agreement.
SCHEMA_KIND: dict[str, str] = {
    cat.SPREADSHEET_ANALYSIS: "table",
    cat.SPREADSHEET_TRANSFORMATION: "table",
    cat.SPREADSHEET_GENERATION: "table",
    cat.SPREADSHEET_SEARCH: "table",
    cat.SPREADSHEET_FORMATTING: "table",
    cat.DATA_CHART: "chart",
    cat.DATA_HISTOGRAM: "histogram",
    cat.SPREADSHEET_ASSISTANCE: "text",
    cat.PROCESS_CATEGORY: "process_analysis",
    cat.UNCERTAIN: "text",
}

# Short examples of valid answers. They go into system prompts (placeholder {answer_format}) and
# into repair requests, so the model always sees the exact contract it is held to.
FORMAT_EXAMPLES: dict[str, dict[str, Any]] = {
    "table": {
        "values": [["Итого", "=SUM(B2:B10)"], ["Среднее", 42.5]],
        "output_range": "F2:G3",
        "text": "Краткое пояснение результата.",
    },
    "chart": {
        "chart_type": "line",
        "title": "Продажи по месяцам",
        "categories_range": "A2:A13",
        "series": [{"name": "Выручка", "values_range": "B2:B13"}],
        "x_axis_title": "Месяц",
        "y_axis_title": "Руб.",
    },
    "histogram": {
        "source_columns": ["C"],
        "bins": 10,
        "title": "Распределение сумм заказов",
        "x_axis_title": "Сумма",
        "y_axis_title": "Количество",
    },
    "text": {"text": "Ответ пользователю обычным текстом (можно Markdown)."},
    "process_analysis": {
        "score": 7,
        "problem": "Главная проблема процесса.",
        "solution": {"description": "Что автоматизировать и как.", "tools": ["n8n", "Python"]},
        "savings": {"hours_per_month": 20, "description": "Оценка экономии."},
        "implementation": ["Шаг 1", "Шаг 2", "Шаг 3"],
        "summary": "Одно предложение для руководителя.",
    },
}


class AnswerInvalid(AppError):
    """The model's answer cannot be used. `message` is meant for the request's error field."""

    status_code = 502
    code = "answer_invalid"


def schema_kind(category: str) -> str:
    canonical = cat.resolve_category(category)
    if canonical is None:
        raise AnswerInvalid(f"unknown category {category!r}")
    return SCHEMA_KIND[canonical]


def answer_format(category: str) -> str:
    """The example answer for `category` as compact JSON, for prompts."""
    return json.dumps(FORMAT_EXAMPLES[schema_kind(category)], ensure_ascii=False)


def parse_answer(category: str, text: str) -> dict[str, Any]:
    """Validated result for `category`, or AnswerInvalid with a message a person or model can act on."""
    kind = schema_kind(category)
    try:
        data = extract_json(text)
    except JSONNotFound as exc:
        raise AnswerInvalid(f"no usable JSON in the model's answer: {exc}") from exc
    data = _coerce_shape(kind, data)
    if not isinstance(data, dict):
        raise AnswerInvalid(f"expected a JSON object for {kind!r}, got {type(data).__name__}")
    try:
        model = SCHEMA_MODELS[kind].model_validate(data)
    except ValidationError as exc:
        raise AnswerInvalid(
            f"the answer does not match the {kind!r} schema: {_describe(exc)}", details=_errors(exc)
        ) from exc
    return model.model_dump(mode="json", exclude_none=True)


def _coerce_shape(kind: str, data: Any) -> Any:
    """Accept the common near misses: a bare 2-D array for tables, a bare string for text."""
    if kind == "table" and isinstance(data, list):
        return {"values": data}
    if kind == "text" and isinstance(data, str):
        return {"text": data}
    if isinstance(data, dict) and len(data) == 1:
        # {"result": {...}} / {"answer": {...}} wrappers around the real object.
        (only,) = data.values()
        if isinstance(only, dict) and kind != "table":
            return only
    return data


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ".".join(str(part) for part in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _describe(exc: ValidationError, limit: int = 5) -> str:
    parts = [f"{e['loc'] or '(root)'}: {e['msg']}" for e in _errors(exc)[:limit]]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


_REPAIR_SYSTEM = (
    "You fix JSON. Return ONLY one JSON object that satisfies the required format, with no prose and no "
    "code fences. Keep the content of the previous answer; change only what is needed to make it valid."
)
_MAX_ECHO_CHARS = 6_000


def build_repair_request(original: ChatRequest, bad_answer: str, error: AnswerInvalid | str) -> ChatRequest:
    """A single follow-up request asking the model to correct its invalid answer.

    The original task is repeated because the backends are stateless: the model must see what it
    was asked, what it answered, and exactly what was wrong.
    """
    category = str(original.context.get("category") or cat.SPREADSHEET_ASSISTANCE)
    message = error.message if isinstance(error, AnswerInvalid) else str(error)
    echoed = bad_answer if len(bad_answer) <= _MAX_ECHO_CHARS else bad_answer[:_MAX_ECHO_CHARS] + "\n…[cut]"
    user = "\n\n".join(
        [
            "The task was:",
            original.user,
            "Your previous answer:",
            echoed,
            f"It was rejected: {message}",
            f"Required JSON format (example): {answer_format(category)}",
            "Reply with the corrected JSON object only.",
        ]
    )
    context = {**original.context, "repair": True}
    return dataclasses.replace(
        original, system=f"{original.system}\n\n{_REPAIR_SYSTEM}", user=user, context=context
    )
