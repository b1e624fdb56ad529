"""The dryrun backend is a real backend: deterministic, schema-valid for every category, leak-free."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.kinds import KINDS
from service.llm.base import ChatRequest, Overloaded
from service.llm.dryrun import DryrunBackend
from service.pipeline.answer import parse_answer
from service.pipeline.categories import ACTIVE_CATEGORIES, PROCESS_CATEGORY

SECRET = "s3cr3t-value-that-must-never-leak"
ROWS = [["Товар", "Январь", "Февраль"], ["A", 100, 120], ["B", 80, 90]]


def context(category: str) -> dict[str, object]:
    if category == PROCESS_CATEGORY:
        return {
            "kind": "process_analysis",
            "category": category,
            "title": "Invoices",
            "description": "Invoices arrive by email and are typed into Excel manually every day.",
        }
    return {
        "kind": "spreadsheet",
        "category": category,
        "query_text": "Сделай что-нибудь полезное",
        "input_range": "B2:D4",
        "input_data": ROWS,
    }


def request(category: str) -> ChatRequest:
    kind = KINDS[str(context(category)["kind"])]  # each kind gives its own dryrun answer
    return kind.chat_request(
        system="SYSTEM PROMPT INTERNALS", user="USER TEMPLATE INTERNALS", context=context(category)
    )


@pytest.mark.parametrize("category", ACTIVE_CATEGORIES)
async def test_every_category_gets_a_schema_valid_deterministic_answer(
    category: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", SECRET)
    monkeypatch.setenv("GIGACHAT_MTLS_KEY_FILE_PASSWORD", SECRET)
    backend = DryrunBackend(Settings(_env_file=None))  # type: ignore[call-arg]
    first = await backend.chat(request(category))
    second = await backend.chat(request(category))
    assert first.text == second.text
    parsed = parse_answer(category, first.text)
    assert parsed
    for leaked in (SECRET, "SYSTEM PROMPT INTERNALS", "USER TEMPLATE INTERNALS"):
        assert leaked not in first.text
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0
    assert first.usage.estimated is True


async def test_spreadsheet_analysis_is_per_column_statistics() -> None:
    backend = DryrunBackend(Settings(_env_file=None))  # type: ignore[call-arg]
    answer = parse_answer("spreadsheet-analysis", (await backend.chat(request("spreadsheet-analysis"))).text)
    assert answer["values"][0] == ["Столбец", "Количество", "Сумма", "Среднее", "Мин", "Макс"]
    assert ["Январь", 2, 180, 90, 80, 100] in answer["values"]
    assert ["Февраль", 2, 210, 105, 90, 120] in answer["values"]


async def test_failure_rate_fails_the_same_inputs_every_time() -> None:
    always = DryrunBackend(Settings(_env_file=None, dryrun_failure_rate=1.0))  # type: ignore[call-arg]
    with pytest.raises(Overloaded) as raised:
        await always.chat(request("spreadsheet-analysis"))
    assert raised.value.retryable
    never = DryrunBackend(Settings(_env_file=None, dryrun_failure_rate=0.0))  # type: ignore[call-arg]
    assert (await never.chat(request("spreadsheet-analysis"))).text
