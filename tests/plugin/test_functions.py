"""The cell functions in Chromium, against a real service: =GIGA.TABLE spills its table, =GIGA answers
text, =GIGA.CLASSIFY a category; recalculating asks the service nothing new (counted on the service);
100 cells fill without an error."""

from __future__ import annotations

from playwright.sync_api import Browser

from tests.plugin.harness import SALES, Editor, Service, open_editor


def set_formulas(editor: Editor, formulas: dict[str, str]) -> None:
    editor.js("fs => Promise.all(Object.entries(fs).map(([cell, f]) => Sheet.setFormula(cell, f)))", formulas)


def test_a_function_cell_gets_its_value_and_recalculation_asks_nothing_new(
    browser: Browser, service: Service
) -> None:
    context, editor = open_editor(browser, service)
    try:
        # The plugin put its functions into the document's library, and the editor registered them.
        library = editor.js("() => FakeEditor.methods")
        assert "SetCustomFunctions" in library
        before = service.requests_received()
        editor.fill_sheet("A1", SALES)
        set_formulas(
            editor,
            {
                "E1": '=GIGA.TABLE("Отсортируй по убыванию"; A1:C4)',
                "E7": '=GIGA("Какой товар продавался лучше всего?"; A1:C4)',
                "E12": '=GIGA.CLASSIFY("Построй круговую диаграмму по месяцам")',
            },
        )
        editor.shot("functions")
        assert editor.cells("E1:G4") == [
            ["Товар", "Янв", "Фев"],
            ["Товар C", "95", "97"],
            ["Товар B", "80", ""],
            ["Товар A", "100", "120"],
        ]
        assert editor.cells("E7")[0][0] != "" and not editor.cells("E7")[0][0].startswith("#")
        assert editor.cells("E12") == [["data-chart"]]
        assert service.requests_received() == before + 2  # classify is not a request

        calls = editor.js("() => Sheet.calls.length")
        editor.js("() => Sheet.recalculate()")
        assert editor.js("() => Sheet.calls.length") == calls + 3  # every cell was computed again…
        assert service.requests_received() == before + 2  # …and nothing new reached the service
        assert editor.cells("E1:G2") == [["Товар", "Янв", "Фев"], ["Товар C", "95", "97"]]
    finally:
        context.close()

    # Another session (the document opened again): the same calls carry the same Idempotency-Key,
    # so the service answers with the requests it already has.
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", SALES)
        set_formulas(editor, {"E1": '=GIGA.TABLE("Отсортируй по убыванию"; A1:C4)'})
        assert editor.cells("E2") == [["Товар C"]]
        assert service.requests_received() == before + 2
    finally:
        context.close()


def test_a_hundred_function_cells_fill_without_an_error(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service)
    try:
        rows = [["Товар", "Сумма"]] + [[f"Товар {i}", i * 10] for i in range(1, 21)]
        editor.fill_sheet("A1", rows)
        before = service.requests_received()
        # 100 cells over 20 distinct ranges (A1:B2 … A1:B21), five cells each, one row apart.
        question = "Какой товар продавался лучше всего?"
        formulas = {f"D{cell + 1}": f'=GIGA.TABLE("{question}"; A1:B{cell % 20 + 2})' for cell in range(100)}
        set_formulas(editor, formulas)
        values = editor.js("cells => cells.map(c => Sheet.get(c))", list(formulas))
        errors = [value for value in values if not value or str(value).startswith("#")]
        assert not errors, errors[:5]
        assert editor.js("() => Sheet.errors") == []
        assert service.requests_received() == before + 20  # one per distinct call
    finally:
        context.close()


def test_an_error_reads_as_text_in_the_cell(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service, key="gok_000000000000_not-a-real-key")
    try:
        editor.fill_sheet("A1", SALES)
        set_formulas(editor, {"E1": '=GIGA.TABLE("Отсортируй по убыванию"; A1:C4)'})
        assert editor.cells("E1") == [["#GIGA: API key refused"]]
    finally:
        context.close()
