"""The process-analysis report as a PDF: every section there, and Russian text that survives a
round trip through the file (extracted back out with pypdf)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from service.pipeline.answer import parse_answer
from service.pipeline.report_pdf import render_report_pdf

RESULT = parse_answer(
    "process-analysis",
    """{"score": 7, "problem": "Бухгалтер вручную переносит счета из почты в 1С 🙃",
        "summary": "Автоматизация окупится за два месяца.",
        "solution": {"description": "Связать почтовый ящик, распознавание и 1С",
                     "tools": ["n8n", "ABBYY FlexiCapture"]},
        "savings": {"hours_per_month": 32, "description": "Освобождает четыре рабочих дня в месяц"},
        "implementation": ["Собрать образцы счетов", "Настроить распознавание", "Запустить пилот"]}""",
)


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_every_section_survives_in_russian_and_in_order() -> None:
    pdf = render_report_pdf(RESULT, title="Входящие счета", language="ru")
    assert pdf.startswith(b"%PDF-")
    text = text_of(pdf)
    expected = [
        "Анализ процесса: Входящие счета",
        "Оценка потенциала автоматизации: 7/10",
        "Главная проблема",
        "Бухгалтер вручную переносит счета из почты в 1С",
        "Решение",
        "Связать почтовый ящик, распознавание и 1С",
        "Инструменты",
        "ABBYY FlexiCapture",
        "Экономия",
        "≈ 32 ч/мес",
        "Освобождает четыре рабочих дня в месяц",
        "Шаги внедрения",
        "1. Собрать образцы счетов",
        "3. Запустить пилот",
        "Кратко",
        "Автоматизация окупится за два месяца.",
    ]
    positions = [text.index(fragment) for fragment in expected]
    assert positions == sorted(positions)


def test_the_font_is_embedded_not_a_core_font() -> None:
    pdf = PdfReader(io.BytesIO(render_report_pdf(RESULT)))
    fonts = {
        str(font.get_object()["/BaseFont"])
        for page in pdf.pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert fonts and all("PTSans" in name.replace(" ", "") for name in fonts), fonts


def test_english_labels_and_a_long_report_break_across_pages() -> None:
    long = {**RESULT, "implementation": [f"Step number {n} of the rollout plan" for n in range(1, 80)]}
    pdf = render_report_pdf(long, title="Invoices", language="en")
    text = text_of(pdf)
    assert len(PdfReader(io.BytesIO(pdf)).pages) > 1
    assert "Process analysis: Invoices" in text and "79. Step number 79" in text
