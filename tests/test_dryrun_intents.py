"""Dryrun answers speak the query's language and follow the wishes it states, and stay schema-valid."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.kinds import KINDS
from service.kinds.dryrun_intents import chart_type, comparison, language, wants
from service.llm.dryrun import DryrunBackend
from service.pipeline import categories as cat
from service.pipeline.answer import parse_answer

RU = [
    ["Товар", "Январь", "Февраль", "Март"],
    ["Товар A", 100, 120, 110],
    ["Товар B", 80, -90, 95],
    ["Товар B", 80, -90, 95],
    ["", None, None, None],
    ["Товар C", 10, 20, 5],
]
EN = [["Product", "Jan", "Feb"], ["A", 100, 120], ["B", 80, 90], ["B", 80, 90], ["C", -5, 1]]
CYRILLIC = set("абвгдежзийклмнопрстуфхцчшщъыьэюяё")


def answer(
    category: str, query: str, rows: list[list[Any]] | None, input_range: str = "A1"
) -> dict[str, Any]:
    context = {
        "kind": "spreadsheet",
        "category": category,
        "query_text": query,
        "input_range": input_range,
        "input_data": rows,
    }
    produced = dryrun_answer(context)
    parse_answer(category, orjson.dumps(produced).decode())  # every answer is schema-valid
    return produced


def dryrun_answer(context: dict[str, Any]) -> dict[str, Any]:
    """What the dryrun backend answers for a request of this context's kind (the kind gives it)."""
    request = KINDS[context["kind"]].chat_request(system="", user="", context=context)
    answer: dict[str, Any] = orjson.loads(DryrunBackend.answer_text(request))
    return answer


def has_cyrillic(text: str) -> bool:
    return bool(CYRILLIC & set(text.lower()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Построй круговую диаграмму", "ru"),
        ("Make a pie chart", "en"),
        ("сделай pie chart по регионам", "ru"),  # Russian users mix in English terms
        ("", "en"),
    ],
)
def test_language_of_the_query(text: str, expected: str) -> None:
    assert language(text) == expected


def test_language_falls_back_to_the_header_row() -> None:
    assert language("2024?", RU) == "ru" and language("2024?", EN) == "en"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("сделай круговую диаграмму", "pie"),
        ("Нарисуй пирог по расходам", "pie"),
        ("make a pie chart", "pie"),
        ("кольцевая диаграмма", "doughnut"),
        ("линейный график", "line"),
        ("line chart of revenue", "line"),
        ("точечная диаграмма", "scatter"),
        ("scatter plot", "scatter"),
        ("столбчатая диаграмма", "column"),
        ("horizontal bar chart", "bar"),
        ("линейчатая диаграмма", "bar"),
        ("диаграмма с областями", "area"),
        ("покажи график", None),
        ("piecewise chart of pies?", None),  # "pie" is a whole word, not a word beginning
    ],
)
def test_chart_type_intents(query: str, expected: str | None) -> None:
    assert chart_type(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [("найди больше 100", (">", 100.0)), ("values below 1 000", ("<", 1000.0)), ("найди Иванова", None)],
)
def test_comparison(query: str, expected: tuple[str, float] | None) -> None:
    assert comparison(query) == expected


@pytest.mark.parametrize(
    ("query", "chart"),
    [
        ("Сделай круговую диаграмму по февралю", "pie"),
        ("Make a scatter plot", "scatter"),
        ("bar chart", "bar"),
    ],
)
def test_chart_follows_the_asked_type(query: str, chart: str) -> None:
    produced = answer(cat.DATA_CHART, query, RU)
    assert produced["chart_type"] == chart
    if chart == "pie":  # one ring: the column the query names
        assert [s["name"] for s in produced["series"]] == ["Февраль"]


def test_chart_without_a_wish_keeps_the_default() -> None:
    assert answer(cat.DATA_CHART, "Построй диаграмму", RU)["chart_type"] == "column"


@pytest.mark.parametrize(
    ("query", "rows", "expected_text"),
    [
        ("Удали дубликаты", RU, "удалено дубликатов: 1"),
        ("remove duplicates", EN, "removed 1 duplicate row(s)"),
    ],
)
def test_remove_duplicates(query: str, rows: list[list[Any]], expected_text: str) -> None:
    produced = answer(cat.SPREADSHEET_TRANSFORMATION, query, rows)
    bodies = [tuple(map(str, row)) for row in produced["values"][1:]]
    assert len(bodies) == len(set(bodies)) == len(rows) - 2
    assert expected_text in produced["text"]


def test_remove_empty_rows_and_duplicates_in_russian() -> None:
    produced = answer(cat.SPREADSHEET_TRANSFORMATION, "удали пустые строки и дубли", RU)
    assert produced["values"] == [RU[0], RU[1], RU[2], RU[5]]
    assert "пустых строк: 1" in produced["text"] and "дубликатов: 1" in produced["text"]


@pytest.mark.parametrize(
    ("query", "column", "descending"),
    [
        ("sort by Jan descending", 1, True),
        ("отсортируй по февралю по убыванию", 2, True),
        ("sort by Feb", 2, False),
    ],
)
def test_sort_by_named_column_and_direction(query: str, column: int, descending: bool) -> None:
    rows = RU if "феврал" in query else EN
    produced = answer(cat.SPREADSHEET_TRANSFORMATION, query, rows)
    keys = [row[column] for row in produced["values"][1:] if isinstance(row[column], int | float)]
    assert keys == sorted(keys, reverse=descending) and len(keys) >= 3


def test_transpose() -> None:
    produced = answer(cat.SPREADSHEET_TRANSFORMATION, "Транспонируй таблицу", EN)
    assert produced["values"][0] == ["Product", "A", "B", "B", "C"]


def test_highlight_negatives_in_red_marks_exactly_those_cells() -> None:
    produced = answer(cat.SPREADSHEET_FORMATTING, "выдели красным отрицательные", RU, input_range="B2")
    assert {rule["range"] for rule in produced["formatting"]} == {"D4", "D5"}  # the two -90 cells
    assert all(rule["background_color"] == "#FFC7CE" for rule in produced["formatting"])
    assert has_cyrillic(produced["text"])


def test_highlight_above_a_limit_in_the_named_colour() -> None:
    produced = answer(cat.SPREADSHEET_FORMATTING, "highlight values over 85 in green", EN)
    assert {rule["range"] for rule in produced["formatting"]} == {"B2", "C2", "C3", "C4"}
    assert {rule["background_color"] for rule in produced["formatting"]} == {"#C6EFCE"}
    assert not has_cyrillic(produced["text"])


def test_number_format_wish() -> None:
    produced = answer(cat.SPREADSHEET_FORMATTING, "Format the amounts as percent", EN)
    assert {rule.get("number_format") for rule in produced["formatting"]} == {"0.00%"}


def test_search_by_comparison_on_the_named_column() -> None:
    produced = answer(cat.SPREADSHEET_SEARCH, "найди строки, где март больше 100", RU)
    assert produced["values"] == [["Ячейка", *RU[0]], ["A2", *RU[1]]]


def test_histogram_follows_named_column_and_bins() -> None:
    produced = answer(cat.DATA_HISTOGRAM, "гистограмма по январю, 4 интервала", RU)
    assert (produced["source_columns"], produced["bins"]) == (["B"], 4)
    assert produced["title"] == "Распределение: Январь"
    english = answer(cat.DATA_HISTOGRAM, "histogram of Jan with 3 bins", EN)
    assert (english["source_columns"], english["bins"], english["title"]) == (["B"], 3, "Distribution of Jan")


@pytest.mark.parametrize(
    ("query", "rows", "expected"),
    [
        ("какой товар продавался хуже всего", RU, [["Место", "Товар", "Итого"], [1, "Товар C", 35]]),
        ("top 2 products by Feb", EN, [["Rank", "Product", "Feb"], [1, "A", 120], [2, "B", 90]]),
    ],
)
def test_analysis_ranks_when_asked_for_best_or_worst(
    query: str, rows: list[list[Any]], expected: list[list[Any]]
) -> None:
    produced = answer(cat.SPREADSHEET_ANALYSIS, query, rows)
    assert produced["values"][: len(expected)] == expected


def test_analysis_reports_the_trend_when_asked() -> None:
    produced = answer(cat.SPREADSHEET_ANALYSIS, "Проанализируй продажи и найди тренды", RU)
    assert "Товар A: 100 → 110 (+10.0%)" in produced["text"]


def test_generation_speaks_russian_and_honours_the_row_count() -> None:
    produced = answer(cat.SPREADSHEET_GENERATION, "Создай таблицу расходов на 5 строк", None)
    assert produced["values"][0][2] == "Сумма" and produced["values"][-1][0] == "Итого"
    assert len(produced["values"]) == 5 + 2


@pytest.mark.parametrize("category", sorted(cat.SPREADSHEET_CATEGORIES))
@pytest.mark.parametrize(
    ("query", "rows", "russian"), [("Сделай что-нибудь", RU, True), ("Do something", EN, False)]
)
def test_every_answer_speaks_the_query_language(
    category: str, query: str, rows: list[list[Any]], russian: bool
) -> None:
    produced = answer(category, query, rows)
    words = " ".join(
        str(produced.get(key) or "") for key in ("text", "title", "x_axis_title", "y_axis_title")
    ) + " ".join(str(cell) for cell in (produced.get("values") or [[]])[0])
    own = words.replace(query, "")  # the query itself may be echoed as a title
    for cell in rows[0]:
        own = own.replace(str(cell), "")
    assert has_cyrillic(own) == russian, produced


@pytest.mark.parametrize(
    ("title", "description", "russian"),
    [
        ("Счета", "Бухгалтер вручную создаёт счета в Excel", True),
        ("Invoices", "An accountant types invoices into Excel manually", False),
    ],
)
def test_process_analysis_speaks_the_description_language(
    title: str, description: str, russian: bool
) -> None:
    produced = dryrun_answer({"kind": "process_analysis", "title": title, "description": description})
    parse_answer(cat.PROCESS_CATEGORY, orjson.dumps(produced).decode())
    texts = [produced["problem"], produced["solution"]["description"], *produced["implementation"]]
    assert all(has_cyrillic(text.replace(title, "")) == russian for text in texts)


def test_intent_stems_cover_russian_endings() -> None:
    assert wants("Удалите дубли", "remove") and wants("Удалите дубли", "duplicates")
    assert wants("по убыванию", "descending") and not wants("по возрастанию", "descending")
