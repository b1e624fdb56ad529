"""Kind `text`: a free-text question with an optional document excerpt, answered as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from service.config import Settings
from service.db.requests_repo import ClaimedRequest
from service.kinds import KINDS
from service.kinds.base import BuiltPrompt, Kind
from service.kinds.text import SYSTEM, TextInput
from service.llm.base import ChatResponse, Usage
from service.llm.dryrun import DryrunBackend
from service.llm.registry import build_backend
from service.pipeline.answer import AnswerInvalid
from tests.peers.fixtures import *  # noqa: F403 - peers are used by name
from tests.peers.fixtures import openai_values
from tests.peers.openai_server import OpenAIPeer
from tests.support import make_settings, running_service

TEXT = KINDS["text"]
CYRILLIC = set("абвгдежзийклмнопрстуфхцчшщъыьэюяё")
QUESTION_RU = "Какой срок оплаты указан в договоре?"
DOCUMENT_RU = "4.2. Покупатель оплачивает товар в течение 10 банковских дней с даты счёта."


class NoTemplates:
    """`Prompts` for a kind that must not need templates: any use of them fails the test."""

    def __init__(self) -> None:
        self.settings = Settings(_env_file=None)  # type: ignore[call-arg]

    async def templated(self, kind: Kind, row: ClaimedRequest, context: Any, category: Any) -> BuiltPrompt:
        raise AssertionError("the text kind has its own prompt")


def claimed(**columns: Any) -> ClaimedRequest:
    body = TextInput.model_validate({"kind": "text", **columns})
    row = TEXT.to_row(body, TEXT.category(body))
    values = {"query_text": None, "input_range": None, "input_data": None, "title": None, "description": None}
    values.update(row)
    return ClaimedRequest(
        id=uuid.uuid4(), kind="text", category=values["category"], query_text=values["query_text"],
        input_range=None, input_data=None, title=None, description=values["description"],
        options=values["options"], attempts=1, owner_id=None, batch_id=None,
        created_at=datetime.now(UTC), started_at=None,
    )  # fmt: skip


def answer(text: str) -> ChatResponse:
    return ChatResponse(text=text, usage=Usage(1, 1, 2), model="m", latency_ms=1.0, backend="b")


def test_the_body_maps_to_existing_columns() -> None:
    body = TextInput.model_validate(
        {"kind": "text", "question": f"  {QUESTION_RU} ", "document": DOCUMENT_RU, "language": "en"}
    )
    assert TEXT.category(body) is None
    assert TEXT.to_row(body, None) == {
        "category": None,
        "query_text": QUESTION_RU,  # stripped
        "description": DOCUMENT_RU,
        "options": {"language": "en"},
    }
    without = TextInput.model_validate({"kind": "text", "question": "Why?", "document": ""})
    assert TEXT.to_row(without, None)["description"] is None and TEXT.to_row(without, None)["options"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "text"},
        {"kind": "text", "question": "   "},
        {"kind": "text", "question": "Why?", "language": "de"},
        {"kind": "text", "question": "Why?", "surprise": 1},
        {"kind": "text", "question": "Why\x00?"},
    ],
)
def test_bad_bodies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TextInput.model_validate(body)


async def test_the_prompt_is_the_kinds_own_in_the_questions_language_with_the_excerpt_fenced() -> None:
    built = await TEXT.prompt(claimed(question=QUESTION_RU, document=DOCUMENT_RU), NoTemplates())
    assert built.category is None and built.template_version is None
    assert built.chat.system == SYSTEM["ru"]
    assert QUESTION_RU in built.chat.user
    assert f"<<<\n{DOCUMENT_RU}\n>>>" in built.chat.user
    assert built.chat.context["language"] == "ru"
    english = await TEXT.prompt(claimed(question="What is the payment term?"), NoTemplates())
    assert english.chat.system == SYSTEM["en"] and "<<<" not in english.chat.user
    asked = await TEXT.prompt(claimed(question=QUESTION_RU, language="en"), NoTemplates())
    assert asked.chat.system == SYSTEM["en"]


async def test_the_dryrun_answer_speaks_the_questions_language() -> None:
    backend = DryrunBackend(Settings(_env_file=None))  # type: ignore[call-arg]
    russian = await backend.chat(
        (await TEXT.prompt(claimed(question=QUESTION_RU, document=DOCUMENT_RU), NoTemplates())).chat
    )
    assert CYRILLIC & set(russian.text.lower().replace(QUESTION_RU.lower(), ""))
    assert "12" in russian.text  # the excerpt's word count
    english = await backend.chat((await TEXT.prompt(claimed(question="Is it late?"), NoTemplates())).chat)
    assert not CYRILLIC & set(english.text.lower()) and "Is it late?" in english.text
    for leaked in (SYSTEM["ru"], SYSTEM["en"]):
        assert leaked not in russian.text + english.text


async def test_the_answer_is_stored_as_text_and_an_empty_one_is_invalid() -> None:
    built = await TEXT.prompt(claimed(question=QUESTION_RU), NoTemplates())
    assert TEXT.result(built, answer("  Десять банковских дней.\n")) == {
        "text": "Десять банковских дней.",
        "language": "ru",
    }
    with pytest.raises(AnswerInvalid):
        TEXT.result(built, answer(" \n "))
    assert not TEXT.repairs  # free text: nothing a repair round could fix
    completion = TEXT.chat_completion(
        uuid.uuid4(), {"text": "Ten days.", "language": "en"}, datetime.now(UTC)
    )
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "Ten days."}


async def test_text_request_end_to_end_with_dryrun(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.submit({"kind": "text", "question": QUESTION_RU, "document": DOCUMENT_RU})
        assert response.status_code == 202, response.text
        request_id = response.json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed" and final["category"] is None, final
        assert svc.backend.calls[-1].system == SYSTEM["ru"]  # the interactive lane, the kind's prompt
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()["result"]
        assert result["language"] == "ru" and CYRILLIC & set(result["text"].lower())
        seed = (await svc.client.get(f"/api/ai/result/{request_id}")).json()
        assert seed["success"] and seed["answer_type"] == "text" and seed["text"] == result["text"]
        assert seed["result"] == []  # nothing to write into cells
        report = await svc.client.get(f"/api/v1/requests/{request_id}/report")
        assert report.status_code == 404  # reports are a process-analysis kind's


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [("question", "x" * 41, {"max_query_chars": 40}), ("document", "y" * 41, {"max_description_chars": 40})],
)
async def test_size_limits_are_a_422(
    postgres_url: str, kafka_bootstrap: str, field: str, value: str, setting: dict[str, int]
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, **setting)
    async with running_service(settings, with_worker=False) as svc:
        body = {"kind": "text", "question": "Why?", field: value}
        response = await svc.submit(body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["loc"] == field


async def test_the_question_and_excerpt_reach_an_openai_compatible_backend(
    openai_upstream: OpenAIPeer, postgres_url: str, kafka_bootstrap: str
) -> None:
    openai_upstream.reply_text = "Payment is due within ten bank days.\n"
    settings = make_settings(postgres_url, kafka_bootstrap, **openai_values(openai_upstream))
    async with running_service(settings, backend=build_backend(settings)) as svc:
        body = {"kind": "text", "question": "When is payment due?", "document": "Pay within 10 bank days."}
        request_id = (await svc.submit(body)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed", final
        result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()["result"]
        assert result == {"text": "Payment is due within ten bank days.", "language": "en"}
        (call,) = openai_upstream.calls_to("/chat/completions")
        system, user = call.body["messages"]
        assert system == {"role": "system", "content": SYSTEM["en"]}
        assert user["role"] == "user" and "When is payment due?" in user["content"]
        assert "<<<\nPay within 10 bank days.\n>>>" in user["content"]
