"""The panel in Chromium, against a real service: ask about a selection and see the answer written,
a chart inserted, a cancel, and the errors a person meets (a wrong key, a stopped service)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser

from tests.plugin.harness import SALES, Editor, Service, create_key, free_port, open_editor


def ask(editor: Editor, question: str) -> None:
    editor.panel.fill("#question", question)
    editor.panel.click("#submit")


def states(editor: Editor) -> list[str]:
    seen: list[str] = editor.panel.evaluate("() => GigaPanel.states")
    return seen


def test_a_question_about_the_selection_goes_queued_processing_and_its_answer_is_written(
    browser: Browser, service: Service
) -> None:
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", SALES)
        editor.select("A1:C4")
        editor.shot("ready")
        # Keep both worker slots busy, so the panel's request waits its turn in the queue.
        service.submit()
        service.submit()
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("queued")
        editor.shot("queued")
        editor.wait_status("processing")
        editor.shot("processing")
        editor.wait_status("completed")
        editor.shot("written")
        assert states(editor)[-3:] == ["queued", "processing", "completed"], states(editor)
        assert "E1:G4" in editor.panel.inner_text("#status")
        # Sorted by the first column, descending; the empty cell travelled as null and came back empty.
        assert editor.cells("E1:G4") == [
            ["Товар", "Янв", "Фев"],
            ["Товар C", "95", "97"],
            ["Товар B", "80", ""],
            ["Товар A", "100", "120"],
        ]
        assert editor.cells("A1:C1") == [["Товар", "Янв", "Фев"]]  # the input is untouched
    finally:
        context.close()


def test_filled_cells_are_not_overwritten_without_asking_and_history_fetches_again(
    browser: Browser, service: Service
) -> None:
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", SALES)
        editor.fill_sheet("F2", [["keep me"]])
        editor.select("A1:C4")
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("confirm")
        assert editor.panel.is_visible("#confirm")
        assert "E1:G4" in editor.panel.inner_text("#confirm-text")
        editor.shot("confirm")
        editor.panel.click("#confirm-no")
        editor.wait_status("completed")
        assert editor.cells("F2") == [["keep me"]]
        assert editor.js("() => Sheet.writes.length") == 0

        # The request is in the history; fetching it again offers the same write, accepted this time.
        editor.panel.click("#history-box summary")
        editor.panel.click("#history li button")
        editor.wait_status("confirm")
        editor.panel.click("#confirm-yes")
        editor.panel.wait_for_function("() => document.getElementById('status').innerText.includes('E1:G4')")
        assert editor.cells("F2") == [["95"]]
    finally:
        context.close()


def test_a_chart_answer_inserts_a_chart(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", SALES)
        editor.select("A1:C4")
        ask(editor, "Построй круговую диаграмму")
        editor.wait_status("completed")
        editor.shot("chart")
        charts = editor.js("() => Sheet.charts")
        assert len(charts) == 1, charts
        chart = charts[0]
        assert chart["type"] == "pie"
        assert chart["ref"] == "'Sheet1'!$A$1:$B$4"  # categories + the series, with the header row
        assert chart["data"][0] == ["Товар", "Янв"]
        assert chart["title"] and chart["legend"] == "right"
        assert editor.js("() => Sheet.writes.length") == 0
    finally:
        context.close()


def test_cancel_stops_the_request_and_writes_nothing(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", SALES)
        editor.select("A1:C4")
        for _ in range(2):
            service.submit()
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("queued")
        editor.panel.click("#cancel")
        editor.wait_status("cancelled")
        editor.shot("cancelled")
        assert editor.panel.inner_text("#status") == "Cancelled."
        assert editor.panel.is_hidden("#cancel")
        assert editor.js("() => Sheet.writes.length") == 0
    finally:
        context.close()


def test_a_wrong_key_is_told_apart_from_a_stopped_service(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service, key="gok_000000000000_not-a-real-key")
    try:
        assert editor.panel.get_attribute("#connection", "data-state") == "key"
        assert "refused the API key" in editor.panel.inner_text("#connection-message")
        assert editor.panel.is_visible("#api-key")  # the settings open by themselves
        editor.shot("wrong-key")
        # Asking anyway says the same, in plain words.
        editor.fill_sheet("A1", SALES)
        editor.select("A1:C4")
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("error")
        assert editor.panel.inner_text("#status") == "The API key was refused: check the key in the settings."
    finally:
        context.close()

    # Nothing listens on this port: the service is stopped.
    stopped = f"http://127.0.0.1:{free_port()}"
    context, editor = open_editor(browser, service, url=stopped)
    try:
        assert editor.panel.get_attribute("#connection", "data-state") == "down"
        assert "cannot be reached" in editor.panel.inner_text("#connection-message")
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("error")
        assert "cannot be reached" in editor.panel.inner_text("#status")
        editor.shot("stopped-service")
    finally:
        context.close()


def test_the_panel_speaks_russian(browser: Browser, service: Service) -> None:
    context, editor = open_editor(browser, service, lang="ru-RU")
    try:
        assert editor.panel.inner_text("#submit") == "Спросить"
        # (inside the closed settings: present, not shown)
        assert "Подключено" in str(editor.panel.text_content("#connection-message"))
        categories = editor.panel.eval_on_selector_all("#category option", "os => os.map(o => o.textContent)")
        assert "Анализ данных" in categories
        editor.panel.select_option("#category", "data-chart")
        presets = editor.panel.eval_on_selector_all("#preset option", "os => os.map(o => o.textContent)")
        assert "Круговая диаграмма долей" in presets
        editor.panel.select_option("#preset", label="Круговая диаграмма долей")
        assert editor.panel.input_value("#question") == "Построй круговую диаграмму долей"
        editor.shot("russian")
    finally:
        context.close()


def test_a_process_analysis_is_shown_and_can_be_written_into_a_cell(
    browser: Browser, service: Service
) -> None:
    context, editor = open_editor(browser, service)
    try:
        editor.fill_sheet("A1", [["Счета приходят по почте, бухгалтер вручную вносит их в Excel"]])
        editor.select("A1")
        editor.panel.select_option("#category", "process-analysis")
        ask(editor, "Согласование счетов: два менеджера подтверждают каждый счёт по почте")
        editor.wait_status("completed")
        text = editor.panel.inner_text("#answer-text")
        assert text.startswith("Score: ") and "Problem: " in text, text
        editor.shot("process-analysis")
        editor.panel.click("#write-answer")
        editor.panel.wait_for_function("() => document.getElementById('status').innerText.includes('C1')")
        assert editor.cells("C1")[0][0].startswith("Score: ")
    finally:
        context.close()


def test_the_rate_limit_says_when_to_retry(browser: Browser, service: Service) -> None:
    limited = create_key(service.env, "plugin-tests-limited", "--rpm", "1")
    context, editor = open_editor(browser, service, key=limited)
    try:
        editor.fill_sheet("A1", SALES)
        editor.select("A1:C4")
        ask(editor, "Отсортируй по убыванию")
        editor.wait_status("completed")
        ask(editor, "Отсортируй по возрастанию")
        editor.wait_status("error")
        text = editor.panel.inner_text("#status")
        assert re.fullmatch(r"Request limit reached\. Retry in \d+ s\.", text), text
        editor.shot("rate-limited")
    finally:
        context.close()
