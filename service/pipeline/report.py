"""The SmartFlowAI-style Markdown report of a process analysis."""

from __future__ import annotations

from typing import Any

LABELS = {
    "ru": {
        "title": "Анализ процесса",
        "score": "Оценка потенциала автоматизации",
        "problem": "Главная проблема",
        "solution": "Решение",
        "tools": "Инструменты",
        "savings": "Экономия",
        "hours": "ч/мес",
        "implementation": "Шаги внедрения",
        "summary": "Кратко",
    },
    "en": {
        "title": "Process analysis",
        "score": "Automation potential",
        "problem": "Main problem",
        "solution": "Solution",
        "tools": "Tools",
        "savings": "Savings",
        "hours": "h/month",
        "implementation": "Implementation steps",
        "summary": "Summary",
    },
}


def _inline(text: Any) -> str:
    """One line of Markdown from model text: no stray headings or table breaks from newlines."""
    return " ".join(str(text).split())


def render_report(result: dict[str, Any], *, title: str | None = None, language: str = "ru") -> str:
    """Markdown report from a validated process-analysis result (see schemas.ProcessAnalysis)."""
    labels = LABELS.get(language, LABELS["ru"])
    solution = result.get("solution") or {}
    savings = result.get("savings") or {}
    heading = f"# {labels['title']}" + (f": {_inline(title)}" if title else "")
    lines = [heading, ""]
    if result.get("summary"):
        lines += [f"> {_inline(result['summary'])}", ""]
    score = int(result["score"])
    lines += [f"**{labels['score']}:** {score}/10 " + "★" * score + "☆" * (10 - score), ""]
    lines += [f"## {labels['problem']}", "", str(result["problem"]).strip(), ""]
    lines += [f"## {labels['solution']}", "", str(solution.get("description", "")).strip(), ""]
    tools = solution.get("tools") or []
    if tools:
        lines += [f"**{labels['tools']}:** " + ", ".join(_inline(tool) for tool in tools), ""]
    hours = savings.get("hours_per_month")
    lines += [f"## {labels['savings']}", ""]
    if hours is not None:
        lines.append(f"**≈ {format_hours(hours)} {labels['hours']}**")
    if savings.get("description"):
        lines.append(_inline(savings["description"]))
    lines += ["", f"## {labels['implementation']}", ""]
    lines += [
        f"{number}. {_inline(step)}" for number, step in enumerate(result.get("implementation") or [], 1)
    ]
    return "\n".join(lines).rstrip() + "\n"


def format_hours(hours: float) -> str:
    return str(int(hours)) if float(hours).is_integer() else f"{hours:.1f}"
