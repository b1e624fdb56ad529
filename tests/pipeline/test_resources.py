from __future__ import annotations

from service.pipeline import categories as cat
from service.pipeline.answer import SCHEMA_KIND, parse_answer
from service.pipeline.prompt import PromptInput, build_prompt
from service.pipeline.resources import LANGUAGES, shipped_resources


def test_categories_match_code() -> None:
    res = shipped_resources()
    assert [c.name for c in res.categories] == list(cat.CATEGORY_NAMES)
    assert res.aliases == cat.ALIASES
    for item in res.categories:
        assert item.output_schema == SCHEMA_KIND[item.name]
        assert item.active == (item.name != cat.UNCERTAIN)
    orders = [c.sort_order for c in res.categories]
    assert len(set(orders)) == len(orders)


def test_every_example_answer_is_schema_valid() -> None:
    for name, prompts in shipped_resources().prompts.items():
        for example in prompts.examples:
            import json

            parse_answer(name, json.dumps(example.answer, ensure_ascii=False))


def test_every_template_renders_in_both_languages() -> None:
    for name, prompts in shipped_resources().prompts.items():
        for language in LANGUAGES:
            template = prompts.template(language)
            inp = PromptInput(name, "q", "A1:B2", [["a", 1], ["b", 2]], title="t", description="d")
            prompt = build_prompt(template, inp, table_token_budget=1000)
            assert prompt.system and prompt.user and "{" not in prompt.user.replace("{{", "")


def test_active_categories_have_presets_in_both_languages() -> None:
    for name in cat.ACTIVE_CATEGORIES:
        presets = shipped_resources().prompts[name].presets
        assert presets, name
        assert all(p.ru.prompt and p.en.prompt for p in presets)


def test_resolve_category() -> None:
    assert cat.resolve_category("analysis") == "spreadsheet-analysis"
    assert cat.resolve_category("  Data_Chart ") == "data-chart"
    assert cat.resolve_category("SEARCH") == "spreadsheet-search"
    assert cat.resolve_category("uncertain") == "uncertain"
    assert cat.resolve_category("poetry") is None
    assert cat.resolve_category("") is None
    assert cat.PROCESS_CATEGORY not in cat.SPREADSHEET_CATEGORIES
    assert len(cat.SPREADSHEET_CATEGORIES) == 8
