"""Evaluate the local classifier on a labelled set (used by bench/classify.py and the tests)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.pipeline.classify import ClassifierInput, classify_local

LABELLED_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "classification.yaml"

# Representative selections for the labelled queries: what a user would have selected.
_SAMPLE_DATA: dict[str, list[list[Any]] | None] = {
    "numeric": [
        ["Месяц", "Продажи", "Расходы"],
        ["Январь", 120, 80],
        ["Февраль", 135, 90],
        ["Март", 128, 85],
    ],
    "text": [
        ["Имя", "Город", "Статус"],
        ["Иван Петров", "Москва", "активен"],
        ["Анна Смирнова", "Казань", "нет"],
    ],
    "none": None,
}


@dataclass(frozen=True, slots=True)
class LabelledItem:
    expected: str
    inp: ClassifierInput


def load_labelled(path: Path = LABELLED_SET) -> list[LabelledItem]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = []
    for category, entries in raw.items():
        for entry in entries:
            inp = ClassifierInput(
                query_text=entry.get("text", ""),
                input_data=_SAMPLE_DATA[entry.get("data", "numeric")] if "title" not in entry else None,
                title=entry.get("title"),
                description=entry.get("description"),
            )
            items.append(LabelledItem(category, inp))
    return items


def evaluate(items: list[LabelledItem], threshold: float) -> dict[str, Any]:
    """Accuracy of the local decision, and how often its confidence falls below `threshold`.

    "accuracy_confident" is the accuracy on the requests the service would *not* send to the
    model — the share that matters for answers given without an LLM call.
    """
    correct = 0
    needs_llm = 0
    confident_correct = 0
    per_category: Counter[str] = Counter()
    per_category_correct: Counter[str] = Counter()
    mistakes = []
    for item in items:
        result = classify_local(item.inp)
        per_category[item.expected] += 1
        hit = result.category == item.expected
        correct += hit
        per_category_correct[item.expected] += hit
        if result.confidence < threshold:
            needs_llm += 1
        else:
            confident_correct += hit
        if not hit:
            mistakes.append(
                {
                    "text": item.inp.query_text or item.inp.title,
                    "expected": item.expected,
                    "got": result.category,
                }
            )
    total = len(items)
    confident = total - needs_llm
    return {
        "items": total,
        "accuracy": round(correct / total, 4) if total else 0.0,
        "llm_share": round(needs_llm / total, 4) if total else 0.0,
        "accuracy_confident": round(confident_correct / confident, 4) if confident else 0.0,
        "threshold": threshold,
        "per_category": {
            name: round(per_category_correct[name] / count, 3) for name, count in sorted(per_category.items())
        },
        "mistakes": mistakes,
    }
