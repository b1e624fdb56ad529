from __future__ import annotations

import asyncio

import pytest

from service.llm.base import ChatRequest, Overloaded
from service.pipeline import categories as cat
from service.pipeline.classify import (
    Classifier,
    ClassifierInput,
    build_llm_classification_request,
    classify_local,
    normalise,
    parse_llm_classification,
)
from service.pipeline.classify_eval import evaluate, load_labelled

DESCRIPTIONS = {name: f"about {name}" for name in cat.ACTIVE_CATEGORIES}


def test_labelled_set_covers_every_active_category_in_both_languages() -> None:
    items = load_labelled()
    for name in cat.ACTIVE_CATEGORIES:
        queries = [i.inp.query_text or i.inp.description or "" for i in items if i.expected == name]
        assert len(queries) >= 15, name
        assert any("а" <= ch <= "я" for q in queries for ch in q.lower()), name
        assert any(q.isascii() and q for q in queries), name


def test_local_accuracy_on_labelled_set() -> None:
    report = evaluate(load_labelled(), threshold=0.55)
    # The targets the benchmark enforces; see bench/classify.py.
    assert report["accuracy"] >= 0.85, report["mistakes"]
    assert report["accuracy_confident"] >= 0.95, report["mistakes"]
    assert min(report["per_category"].values()) >= 0.7
    assert report["llm_share"] < 0.35


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Построй гистограмму возрастов", cat.DATA_HISTOGRAM),
        ("Построй график выручки", cat.DATA_CHART),
        ("Удали дубликаты", cat.SPREADSHEET_TRANSFORMATION),
        ("Найди дубликаты", cat.SPREADSHEET_SEARCH),
        ("Make the header bold", cat.SPREADSHEET_FORMATTING),
    ],
)
def test_near_neighbours(text: str, expected: str) -> None:
    assert classify_local(ClassifierInput(text, [["a", "b"], [1, 2]])).category == expected


def test_process_shape_decides() -> None:
    result = classify_local(ClassifierInput("", None, title="Счета", description="вручную"))
    assert (result.category, result.confidence, result.source) == (cat.PROCESS_CATEGORY, 1.0, "rule")


def test_no_evidence_is_uncertain_with_zero_confidence() -> None:
    result = classify_local(ClassifierInput("qwerty zxcv", [["a"], ["b"]]))
    assert result.category == cat.UNCERTAIN and result.confidence == 0.0 and result.message


def test_confidence_grows_with_unambiguous_evidence() -> None:
    weak = classify_local(ClassifierInput("сравни", [["a", 1]]))
    strong = classify_local(ClassifierInput("Построй гистограмму распределения частот", [["a", 1]]))
    assert 0 <= weak.confidence < strong.confidence <= 1


def test_normalise() -> None:
    assert normalise("  Найди   ЁЛКИ!!  ") == "найди елки"


@pytest.mark.parametrize(
    ("answer", "category", "has_message"),
    [
        ('{"category": "data-chart", "confidence": 0.9, "reason": "chart"}', cat.DATA_CHART, True),
        ('```json\n{"category": "analysis", "confidence": "high"}\n```', cat.SPREADSHEET_ANALYSIS, False),
        ('{"category": "poetry", "confidence": 0.99}', cat.UNCERTAIN, True),
        ('{"category": "uncertain", "reason": "vague"}', cat.UNCERTAIN, True),
        ('{"confidence": 0.5}', cat.UNCERTAIN, True),
        ("I think it's a chart", cat.UNCERTAIN, True),
    ],
)
def test_parse_llm_classification(answer: str, category: str, has_message: bool) -> None:
    result = parse_llm_classification(answer)
    assert result.category == category and result.source == "llm"
    assert bool(result.message) == has_message
    if category == cat.UNCERTAIN:
        assert result.confidence == 0.0


def test_llm_confidence_is_clamped() -> None:
    assert parse_llm_classification('{"category": "search", "confidence": 7}').confidence == 1.0


def test_llm_request_lists_categories_and_data_shape() -> None:
    request = build_llm_classification_request(
        ClassifierInput("что-то {system}", [["h1", "h2"], ["x", 2]]), DESCRIPTIONS
    )
    assert isinstance(request, ChatRequest)
    for name in cat.ACTIVE_CATEGORIES:
        assert f"- {name}: about {name}" in request.system
    assert '{"category":' in request.system
    assert "что-то {system}" in request.user and "2 rows × 2 columns, 1 numeric" in request.user


class FakeModel:
    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.calls: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> str:
        self.calls.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_confident_local_result_skips_model_and_is_cached() -> None:
    model = FakeModel('{"category": "data-chart"}')
    classifier = Classifier(threshold=0.55)
    inp = ClassifierInput("Построй гистограмму распределения зарплат", [["a", 1]])
    first = asyncio.run(classifier.classify(inp, ask=model, descriptions=DESCRIPTIONS))
    second = asyncio.run(
        classifier.classify(
            ClassifierInput("построй  ГИСТОГРАММУ распределения зарплат!", [["b", 2]]),
            ask=model,
            descriptions=DESCRIPTIONS,
        )
    )
    assert first.category == second.category == cat.DATA_HISTOGRAM
    assert (first.source, second.source) == ("local", "cache")
    assert model.calls == []


def test_unsure_local_result_asks_model_once_then_caches() -> None:
    model = FakeModel('{"category": "spreadsheet-search", "confidence": 0.8}')
    classifier = Classifier(threshold=0.99)
    inp = ClassifierInput("хочу кое-что сделать", [["a", 1]])
    first = asyncio.run(classifier.classify(inp, ask=model, descriptions=DESCRIPTIONS))
    second = asyncio.run(classifier.classify(inp, ask=model, descriptions=DESCRIPTIONS))
    assert (first.category, first.source, first.confidence) == (cat.SPREADSHEET_SEARCH, "llm", 0.8)
    assert second.source == "cache" and len(model.calls) == 1


def test_model_failure_falls_back_to_local_guess_and_is_not_cached() -> None:
    classifier = Classifier(threshold=0.99)
    inp = ClassifierInput("сравни", [["a", 1]])
    result = asyncio.run(
        classifier.classify(inp, ask=FakeModel(Overloaded("down")), descriptions=DESCRIPTIONS)
    )
    assert result.source == "local" and "unavailable" in (result.message or "")
    assert classifier.cached(inp) is None


def test_model_unknown_answer_becomes_uncertain_with_local_guess_in_message() -> None:
    classifier = Classifier(threshold=0.99)
    inp = ClassifierInput("сравни", [["a", 1]])
    result = asyncio.run(
        classifier.classify(inp, ask=FakeModel('{"category": "poetry"}'), descriptions=DESCRIPTIONS)
    )
    assert result.category == cat.UNCERTAIN
    assert "poetry" in (result.message or "") and "local guess" in (result.message or "")


def test_cache_is_bounded_lru() -> None:
    classifier = Classifier(threshold=0.0, cache_size=2)
    a, b, c = (ClassifierInput(text) for text in ("найди a", "найди b", "найди c"))
    for inp in (a, b):
        asyncio.run(classifier.classify(inp))
    assert classifier.cached(a) is not None  # touch a: b becomes the oldest
    asyncio.run(classifier.classify(c))
    assert classifier.cached(b) is None
    assert classifier.cached(a) is not None and classifier.cached(c) is not None
