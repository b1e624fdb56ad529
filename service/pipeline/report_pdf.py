"""The process-analysis report as a PDF (SmartFlowAI's export), with real Cyrillic text.

The text is set in PT Sans (ParaType, SIL Open Font License), a typeface drawn for Russian, from
the `fontpkg-pt-sans` package: never a core PDF font, which has no Cyrillic and would drop the
letters. fpdf2 embeds the subset of the font the report uses, so the file reads the same in any
viewer and its text can be selected and searched. Same sections as the Markdown report
(report.py): title, score, problem, solution with its tools, savings, implementation steps and the
summary.

fpdf2 (with Pillow) is imported on the first PDF asked for, not with the API: a process that never
renders a PDF does not carry it.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.pipeline.report import LABELS, format_hours

if TYPE_CHECKING:
    from fpdf import FPDF

_FAMILY = "PTSans"
_ACCENT = (31, 78, 121)  # headings and the score bar
_MUTED = (90, 90, 90)


def _font_files() -> dict[str, Path]:
    import fontpkg_pt_sans

    files = Path(fontpkg_pt_sans.ROOT) / "files"
    return {
        "": files / "PT_Sans-Web-Regular.ttf",
        "B": files / "PT_Sans-Web-Bold.ttf",
        "I": files / "PT_Sans-Web-Italic.ttf",
    }


def _clean(text: Any) -> str:
    """Model text as the PDF shows it: control characters and symbols the font lacks (emoji,
    private-use) dropped, lines kept; fpdf2 would otherwise print empty boxes for them."""
    kept = []
    for char in str(text):
        if char == "\n":
            kept.append(char)
        elif unicodedata.category(char) in {"Cc", "Cf", "Co", "Cs", "Cn", "So"}:
            kept.append(" " if char in "\t\r" else "")
        else:
            kept.append(char)
    return "\n".join(" ".join(line.split()) for line in "".join(kept).strip().splitlines()).strip()


class _Writer:
    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf

    def heading(self, text: str, size: float = 14) -> None:
        pdf = self.pdf
        pdf.ln(3)
        pdf.set_font(_FAMILY, "B", size)
        pdf.set_text_color(*_ACCENT)
        pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.ln(1)

    def paragraph(self, text: str, style: str = "", size: float = 11) -> None:
        if not text:
            return
        self.pdf.set_font(_FAMILY, style, size)
        self.pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def items(self, entries: list[str], *, numbered: bool) -> None:
        pdf = self.pdf
        pdf.set_font(_FAMILY, "", 11)
        for number, entry in enumerate(entries, 1):
            marker = f"{number}." if numbered else "•"
            pdf.cell(8, 5.5, marker)
            pdf.multi_cell(0, 5.5, entry, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)

    def score(self, label: str, score: int) -> None:
        pdf = self.pdf
        pdf.set_font(_FAMILY, "B", 12)
        pdf.cell(0, 7, f"{label}: {score}/10", new_x="LMARGIN", new_y="NEXT")
        # Ten boxes, `score` of them filled: the stars of the Markdown report, drawn.
        x, y = pdf.get_x(), pdf.get_y() + 1
        pdf.set_draw_color(*_ACCENT)
        pdf.set_fill_color(*_ACCENT)
        for i in range(10):
            pdf.rect(x + i * 7, y, 5.5, 4, style="DF" if i < score else "D")
        pdf.set_y(y + 7)


def render_report_pdf(result: dict[str, Any], *, title: str | None = None, language: str = "ru") -> bytes:
    """PDF report from a validated process-analysis result (see schemas.ProcessAnalysis)."""
    from fpdf import FPDF

    labels = LABELS.get(language, LABELS["ru"])
    solution = result.get("solution") or {}
    savings = result.get("savings") or {}
    pdf = FPDF(format="A4")
    for style, path in _font_files().items():
        pdf.add_font(_FAMILY, style, str(path))
    heading = labels["title"] + (f": {_clean(title)}" if title else "")
    pdf.set_title(heading)
    pdf.set_creator("GigaOffice AI Service")
    pdf.set_lang(language)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    out = _Writer(pdf)

    out.heading(heading, size=18)
    out.score(labels["score"], max(0, min(10, int(result["score"]))))
    out.heading(labels["problem"])
    out.paragraph(_clean(result.get("problem", "")))
    out.heading(labels["solution"])
    out.paragraph(_clean(solution.get("description", "")))
    tools = [_clean(tool) for tool in solution.get("tools") or [] if _clean(tool)]
    if tools:
        out.paragraph(f"{labels['tools']}:", style="B")
        out.items(tools, numbered=False)
    out.heading(labels["savings"])
    hours = savings.get("hours_per_month")
    if hours is not None:
        out.paragraph(f"≈ {format_hours(hours)} {labels['hours']}", style="B", size=12)
    out.paragraph(_clean(savings.get("description", "")))
    steps = [_clean(step) for step in result.get("implementation") or [] if _clean(step)]
    if steps:
        out.heading(labels["implementation"])
        out.items(steps, numbered=True)
    if result.get("summary"):
        out.heading(labels["summary"])
        out.paragraph(_clean(result["summary"]), style="I")
    return bytes(pdf.output())
