"""What the dryrun backend reads from a request's words: its language and the wishes it states.

A small table of intents with Russian and English word beginnings ("кругов"/"pie" → a pie chart,
"удали"+"дубл"/"remove"+"duplicate" → drop duplicates) and the answers' labels in both languages.
Matching is at word starts on normalised text, so one stem covers Russian case endings; English
entries of three letters or fewer ("pie", "bar", "red", "top") must be whole words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from service.pipeline.classify_model import normalise

INTENTS: dict[str, tuple[str, ...]] = {
    # Chart types, in the order they are looked for (the first one found wins).
    "doughnut": ("кольцев", "пончик", "бублик", "donut", "doughnut"),
    "pie": ("кругов", "пирог", "pie"),
    "scatter": ("точечн", "рассеян", "scatter"),
    "area": ("площад", "с областями", "area"),
    "radar": ("радар", "лепестков", "radar", "spider"),
    "bar": ("линейчат", "горизонтальн", "bar"),
    "column": ("столбчат", "столбик", "column chart", "columns chart"),
    "line": ("линейн", "линия", "линии", "line"),
    # Table operations.
    "remove": (
        "удали",
        "удалить",
        "убери",
        "убрать",
        "очисти",
        "избав",
        "выкин",
        "remove",
        "delete",
        "drop",
        "get rid",
        "clean",
        "dedup",
    ),
    "duplicates": ("дубл", "повтор", "уникальн", "duplicate", "dupe", "dedup", "unique"),
    "empty": ("пуст", "blank", "empty"),
    "sort": ("сортир", "отсортир", "отсартир", "упорядоч", "sort", "order by", "arrange"),
    "descending": (
        "убыв",
        "от большего",
        "от нов",
        "desc",
        "largest first",
        "biggest first",
        "highest first",
        "newest first",
    ),
    "upper": ("верхн", "заглавн", "прописн", "upper", "capital"),
    "lower": ("нижн", "строчн", "lower"),
    "transpose": ("транспон", "transpose", "flip", "rows become columns"),
    # Analysis.
    "top": ("топ", "лучш", "больше всего", "лидер", "top", "best", "highest", "most", "biggest", "largest"),
    "bottom": (
        "худш",
        "хуже",
        "меньше всего",
        "слаб",
        "низк",
        "аутсайдер",
        "worst",
        "lowest",
        "least",
        "bottom",
        "smallest",
    ),
    "trend": (
        "тренд",
        "динамик",
        "рост",
        "упал",
        "упад",
        "просел",
        "снизил",
        "вырос",
        "trend",
        "grow",
        "drop",
        "declin",
        "fell",
        "fall",
        "change",
    ),
    # Formatting.
    "negative": ("отрицательн", "минус", "negative", "below zero"),
    "header": ("заголов", "шапк", "header", "heading", "title row"),
    "bold": ("жирн", "bold"),
    "italic": ("курсив", "italic"),
    "center": ("по центру", "центр", "center", "centre"),
    "percent": ("процент", "percent"),
    "currency": ("денежн", "валют", "рубл", "currency", "money", "dollar"),
    "thousands": ("разделител", "тысяч", "thousand"),
    # Histogram bins ("10 интервалов", "20 bins").
    "bins": ("интервал", "корзин", "бакет", "диапазон", "карман", "bin", "bucket", "range"),
}

COLOURS: dict[str, tuple[tuple[str, ...], str]] = {
    "red": (("красн", "red"), "#FFC7CE"),
    "green": (("зелен", "green"), "#C6EFCE"),
    "yellow": (("желт", "yellow"), "#FFEB9C"),
    "blue": (("син", "голуб", "blue"), "#BDD7EE"),
    "orange": (("оранж", "orange"), "#F8CBAD"),
    "grey": (("сер", "grey", "gray"), "#D9D9D9"),
}

CHART_TYPES = ("doughnut", "pie", "scatter", "area", "radar", "bar", "column", "line")

# (Russian, English); `{name}` fields are filled by `say`.
TEXTS: dict[str, tuple[str, str]] = {
    "column": ("Столбец", "Column"),
    "count": ("Количество", "Count"),
    "sum": ("Сумма", "Sum"),
    "mean": ("Среднее", "Mean"),
    "min": ("Мин", "Min"),
    "max": ("Макс", "Max"),
    "non_empty": ("Заполнено", "Non-empty"),
    "distinct": ("Различных", "Distinct"),
    "query": ("Запрос", "Query"),
    "cell": ("Ячейка", "Cell"),
    "rank": ("Место", "Rank"),
    "total": ("Итого", "Total"),
    "amount": ("Сумма", "Amount"),
    "value": ("Значение", "Value"),
    "series": ("Ряд {n}", "Series {n}"),
    "chart": ("Диаграмма", "Chart"),
    "chart_text": ("Тип диаграммы: {kind}; рядов данных: {n}.", "Chart type: {kind}; {n} data series."),
    "cells": ("Ячейки", "Cells"),
    "row_lengths": ("Длина строк", "Row lengths"),
    "empty_range": ("(пустой диапазон)", "(empty range)"),
    "stats": (
        "Статистика по столбцам выделенного диапазона: {n}.",
        "Statistics of {n} column(s) of the input range.",
    ),
    "no_input": (
        "Данные не выделены; запрос показан в одной ячейке.",
        "No input data was given; the query is echoed as a one-cell table.",
    ),
    "change": ("{name}: {first} → {last} ({pct})", "{name}: {first} → {last} ({pct})"),
    "ranking": ("{order} {n} по столбцу «{name}».", "{order} {n} by '{name}'."),
    "top": ("Лучшие", "Top"),
    "bottom": ("Худшие", "Bottom"),
    "trimmed": ("убраны лишние пробелы", "trimmed spaces"),
    "removed_empty": ("удалено пустых строк: {n}", "removed {n} empty row(s)"),
    "removed_duplicates": ("удалено дубликатов: {n}", "removed {n} duplicate row(s)"),
    "sorted": ("строки отсортированы по столбцу «{name}» {order}", "sorted the rows by '{name}' {order}"),
    "ascending_word": ("по возрастанию", "ascending"),
    "descending_word": ("по убыванию", "descending"),
    "transposed": ("таблица транспонирована", "transposed the table"),
    "upper_done": ("текст переведён в верхний регистр", "text changed to upper case"),
    "lower_done": ("текст переведён в нижний регистр", "text changed to lower case"),
    "layout_row": (
        "Пустая строка по образцу выделенной таблицы.",
        "An empty row in the layout of the selected table.",
    ),
    "template": ("Шаблон на {n} строк с формулой итога.", "A template of {n} rows with a total formula."),
    "found": ("Найдено строк: {n}.", "Found {n} matching row(s)."),
    "not_found": (
        "В диапазоне нет строк, подходящих под запрос.",
        "Nothing in the range matches the request.",
    ),
    "formatted": ("Оформление: {what}.", "Formatting: {what}."),
    "fmt_header": ("жирный заголовок", "bold header"),
    "fmt_negative": ("отрицательные значения выделены", "negative values highlighted"),
    "fmt_threshold": ("выделены значения {op} {limit}", "highlighted values {op} {limit}"),
    "fmt_numbers": ("числовой формат «{fmt}»", "number format '{fmt}'"),
    "fmt_center": ("выравнивание по центру", "centred"),
    "fmt_right": ("числа выровнены вправо", "numbers right-aligned"),
    "fmt_italic": ("курсив", "italic"),
    "distribution": ("Распределение: {name}", "Distribution of {name}"),
    "frequency": ("Частота", "Count"),
    "text_answer": ("Пробный ответ (режим dryrun) на запрос: {query}", "Dryrun answer to: {query}"),
    "empty_request": ("(пустой запрос)", "(empty request)"),
    "process": ("Процесс", "Process"),
    "problem": (
        "«{title}» держится на повторяющихся ручных шагах, которые его замедляют.",
        "'{title}' relies on repetitive manual steps that slow it down.",
    ),
    "solution": (
        "Автоматизировать передачу данных и уведомления с помощью движка бизнес-процессов.",
        "Automate data hand-offs and notifications with a workflow engine.",
    ),
    "savings": ("Оценка по описанному объёму работы.", "Estimated from the described volume."),
    "step1": ("Описать текущие шаги и их входные данные", "Map the current steps and their inputs"),
    "step2": (
        "Сначала автоматизировать самую частую передачу данных",
        "Automate the most frequent hand-off first",
    ),
    "step3": ("Через месяц измерить сэкономленное время", "Measure time saved after one month"),
}

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)")
# "больше 100", "over 1 000", "> 5" — a comparison and its limit.
_COMPARISON = re.compile(
    r"(больше|более|выше|свыше|превыша\w*|over|above|greater than|more than|>"
    r"|меньше|менее|ниже|under|below|less than|<)"
    r"\s*(?:чем\s*|than\s*)?\$?\s*(-?\d[\d\s]*(?:[.,]\d+)?)",
    re.IGNORECASE,
)
_LESS = ("меньше", "менее", "ниже", "under", "below", "less than", "<")


def language(text: str, rows: Sequence[Sequence[Any]] = ()) -> str:
    """'ru' or 'en': the query's script; with no letters in it, the header row's; English otherwise."""
    for sample in (text, " ".join(str(cell) for cell in (rows[0] if rows else ()) if isinstance(cell, str))):
        cyrillic, latin = len(_CYRILLIC.findall(sample)), len(_LATIN.findall(sample))
        if cyrillic or latin:
            # Russian users mix in English terms ("сделай pie chart"); a third Cyrillic is Russian.
            return "ru" if cyrillic * 2 >= latin else "en"
    return "en"


def say(lang: str, key: str, **fields: Any) -> str:
    russian, english = TEXTS[key]
    return (russian if lang == "ru" else english).format(**fields)


@lru_cache(maxsize=256)
def _pattern(stem: str) -> re.Pattern[str]:
    whole = stem.isascii() and len(stem) <= 3
    return re.compile(r"(?<!\w)" + re.escape(stem) + (r"(?!\w)" if whole else ""))


def _found(text: str, stems: Iterable[str]) -> bool:
    normalised = normalise(text)
    return any(_pattern(stem).search(normalised) for stem in stems)


def wants(text: str, intent: str) -> bool:
    return _found(text, INTENTS[intent])


def chart_type(text: str) -> str | None:
    return next((name for name in CHART_TYPES if wants(text, name)), None)


def colour(text: str) -> str | None:
    """The fill colour of the first colour named in the request."""
    return next((fill for stems, fill in COLOURS.values() if _found(text, stems)), None)


def first_number(text: str) -> int | None:
    match = _NUMBER.search(text)
    return int(float(match.group(1).replace(",", "."))) if match else None


def comparison(text: str) -> tuple[str, float] | None:
    """('>' or '<', limit) when the request states one, e.g. 'больше 100' or 'below 5'."""
    match = _COMPARISON.search(text)
    if not match:
        return None
    limit = float(re.sub(r"\s", "", match.group(2)).replace(",", "."))
    return ("<" if match.group(1).lower() in _LESS else ">", limit)


def mentioned_column(text: str, header: Sequence[Any], candidates: Iterable[int]) -> int | None:
    """The first candidate column whose header the request names (by its word beginning)."""
    normalised = normalise(text)
    for index in candidates:
        name = normalise(str(header[index])) if index < len(header) and header[index] is not None else ""
        if len(name) >= 3:
            stem = name[: max(3, min(len(name) - 2, 6))]
            if re.search(r"(?<!\w)" + re.escape(stem), normalised):
                return index
    return None
