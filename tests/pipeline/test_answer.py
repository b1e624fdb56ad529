from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from service.llm.base import ChatRequest
from service.pipeline.answer import (
    FORMAT_EXAMPLES,
    SCHEMA_KIND,
    AnswerInvalid,
    answer_format,
    build_repair_request,
    parse_answer,
)
from service.pipeline.categories import CATEGORY_NAMES
from service.pipeline.jsonextract import JSONNotFound, extract_json

MESSY = Path(__file__).resolve().parents[1] / "data" / "messy_answers"
MANIFEST = yaml.safe_load((MESSY / "manifest.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_messy_corpus(name: str) -> None:
    spec = MANIFEST[name]
    text = (MESSY / name).read_text(encoding="utf-8")
    if "error" in spec:
        with pytest.raises(AnswerInvalid) as caught:
            parse_answer(spec["category"], text)
        assert spec["error"] in caught.value.message
    else:
        result = parse_answer(spec["category"], text)
        for key, value in spec["expect"].items():
            assert result[key] == value, key


def test_corpus_files_all_listed() -> None:
    on_disk = {p.name for p in MESSY.glob("*.txt")}
    assert on_disk == set(MANIFEST)


def test_every_category_has_a_schema_and_its_example_validates() -> None:
    assert set(SCHEMA_KIND) == set(CATEGORY_NAMES)
    for category in CATEGORY_NAMES:
        assert parse_answer(category, answer_format(category))


def test_format_examples_are_json_serialisable() -> None:
    for example in FORMAT_EXAMPLES.values():
        assert json.loads(json.dumps(example)) == example


def test_apostrophes_and_braces_inside_strings_survive_repair() -> None:
    text = "{'text': 'It\\'s {fine} [really], isn\\'t it', 'extra': True,}"
    assert extract_json(text) == {"text": "It's {fine} [really], isn't it", "extra": True}


def test_formula_with_quotes_survives_single_quote_repair() -> None:
    text = """{'values': [['=IF(A1>0,"yes","no")']]}"""
    assert parse_answer("analysis", text)["values"] == [['=IF(A1>0,"yes","no")']]


def test_ragged_rows_are_padded() -> None:
    result = parse_answer("generation", '{"values": [["a", "b", "c"], ["d"]]}')
    assert result["values"] == [["a", "b", "c"], ["d", None, None]]


def test_flat_row_becomes_one_row() -> None:
    assert parse_answer("analysis", '{"values": [1, 2, 3]}')["values"] == [[1, 2, 3]]


def test_invalid_output_range_is_rejected_with_location() -> None:
    with pytest.raises(AnswerInvalid) as caught:
        parse_answer("analysis", '{"values": [[1]], "output_range": "not a range"}')
    assert "output_range" in caught.value.message
    assert caught.value.details and caught.value.details[0]["loc"] == "output_range"


def test_sheet_qualified_range_keeps_sheet_case() -> None:
    result = parse_answer("analysis", '{"values": [[1]], "output_range": "Лист1!b2:c3"}')
    assert result["output_range"] == "Лист1!B2:C3"


def test_chart_series_needs_data() -> None:
    with pytest.raises(AnswerInvalid, match="values_range"):
        parse_answer("data-chart", '{"type": "bar", "series": [{"name": "x"}]}')


def test_chart_accepts_inline_values_and_type_alias() -> None:
    result = parse_answer("data-chart", '{"type": "Pie", "series": [{"name": "x", "values": [1, 2]}]}')
    assert result["chart_type"] == "pie"
    assert result["series"][0]["values"] == [1.0, 2.0]


def test_histogram_rejects_header_names_and_descending_edges() -> None:
    with pytest.raises(AnswerInvalid, match="column letters"):
        parse_answer("data-histogram", '{"source_columns": ["Возраст"], "bins": 5}')
    with pytest.raises(AnswerInvalid, match="ascending"):
        parse_answer("data-histogram", '{"source_columns": ["B"], "bin_edges": [10, 5]}')
    with pytest.raises(AnswerInvalid, match="bins"):
        parse_answer("data-histogram", '{"source_columns": ["B"]}')


def test_text_answer_must_not_be_blank() -> None:
    with pytest.raises(AnswerInvalid):
        parse_answer("spreadsheet-assistance", '{"text": "   "}')


def test_process_analysis_requires_tools_and_steps() -> None:
    base = {
        "score": 5,
        "problem": "p",
        "solution": {"description": "d", "tools": ["n8n"]},
        "savings": {"hours_per_month": 10},
        "implementation": ["one"],
    }
    assert parse_answer("process-analysis", json.dumps(base))["score"] == 5
    for broken in ({**base, "solution": {"description": "d", "tools": []}}, {**base, "implementation": []}):
        with pytest.raises(AnswerInvalid):
            parse_answer("process-analysis", json.dumps(broken))


def test_unknown_category_is_an_error() -> None:
    with pytest.raises(AnswerInvalid, match="unknown category"):
        parse_answer("poetry", '{"text": "x"}')


def test_empty_answer() -> None:
    with pytest.raises(JSONNotFound, match="empty"):
        extract_json("   ")


def test_repair_request_carries_task_answer_error_and_format() -> None:
    original = ChatRequest(
        system="SYS", user="TASK", context={"category": "data-chart", "kind": "spreadsheet"}
    )
    bad = '{"chart_type": "sparkles"}'
    with pytest.raises(AnswerInvalid) as caught:
        parse_answer("data-chart", bad)
    repair = build_repair_request(original, bad, caught.value)
    assert repair.system.startswith("SYS")
    for fragment in ("TASK", bad, caught.value.message, '"chart_type"'):
        assert fragment in repair.user
    assert repair.context["repair"] is True and repair.context["category"] == "data-chart"
    assert original.context.get("repair") is None  # the original is not mutated


def test_repair_request_truncates_huge_answers() -> None:
    original = ChatRequest(system="S", user="U", context={"category": "analysis"})
    repair = build_repair_request(original, "x" * 50_000, "bad")
    assert len(repair.user) < 10_000 and "[cut]" in repair.user
