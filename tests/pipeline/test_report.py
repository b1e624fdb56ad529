from __future__ import annotations

from service.pipeline.answer import parse_answer
from service.pipeline.report import render_report

RESULT = parse_answer(
    "process-analysis",
    """{"score": 8, "problem": "Ручной ввод", "summary": "Стоит автоматизировать.\\n# не заголовок",
        "solution": {"description": "Связать CRM и 1С", "tools": ["n8n", "Python"]},
        "savings": {"hours_per_month": 25.5, "description": "5 ч в неделю"},
        "implementation": ["Выгрузка", "Шаблон", "Рассылка"]}""",
)


def test_report_has_all_sections_in_order() -> None:
    report = render_report(RESULT, title="Счета")
    assert report.startswith("# Анализ процесса: Счета\n")
    positions = [
        report.index(h) for h in ("## Главная проблема", "## Решение", "## Экономия", "## Шаги внедрения")
    ]
    assert positions == sorted(positions)
    assert "8/10" in report and "★" * 8 + "☆" * 2 in report
    assert "n8n, Python" in report
    assert "≈ 25.5 ч/мес" in report
    assert "1. Выгрузка\n2. Шаблон\n3. Рассылка" in report


def test_model_text_cannot_inject_headings_into_single_line_fields() -> None:
    report = render_report(RESULT)
    assert "\n# не заголовок" not in report
    assert "> Стоит автоматизировать. # не заголовок" in report


def test_english_labels() -> None:
    report = render_report(RESULT, language="en")
    assert "## Main problem" in report and "h/month" in report
