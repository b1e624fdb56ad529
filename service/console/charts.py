"""Charts as SVG drawn on the server: no chart library and no script in the browser. Each chart has
a <title> and every bar or point its own, so screen readers and tooltips read the figures."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

_W, _H, _PAD, _BASE = 640, 180, 6, 22


def bar_chart(title: str, points: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Vertical bars, one per (label, value), labelled under the axis every few bars."""
    if not points:
        return Markup(f'<p class="empty">{escape(title)}: no data in this period.</p>')
    top = max(value for _, value in points) or 1
    slot = (_W - 2 * _PAD) / len(points)
    every = max(1, len(points) // 10)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{_PAD}" y1="{_H - _BASE}" x2="{_W - _PAD}" y2="{_H - _BASE}"/>',
    ]
    for index, (label, value) in enumerate(points):
        height = (_H - _BASE - _PAD) * value / top
        x = _PAD + index * slot
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{_H - _BASE - height:.1f}" '
            f'width="{slot * 0.8:.1f}" height="{height:.1f}"><title>{escape(label)}: '
            f"{_figure(value)}{escape(unit)}</title></rect>"
        )
        if index % every == 0:
            parts.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{_H - 6}" text-anchor="middle">'
                f"{escape(label[-5:])}</text>"
            )
    parts.append(
        f'<text class="tick" x="{_PAD}" y="{_PAD + 10}">max {_figure(top)}{escape(unit)}</text></svg>'
    )
    return Markup("".join(parts))


def sparkline(title: str, values: Sequence[float]) -> Markup:
    """A small line of recent values (e.g. completions per minute), newest on the right."""
    if len(values) < 2:
        return Markup("")
    width, height = 240, 40
    top = max(values) or 1
    step = width / (len(values) - 1)
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}"
        for i, v in enumerate(values)
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title><path d="{path}"/></svg>'
    )


def _figure(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value >= 10 else f"{value:.2g}"
