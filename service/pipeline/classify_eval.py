"""Evaluate the local classifier without measuring it on what it was trained on.

`cross_validate` trains on k−1 stratified folds of the labelled set and scores the remaining fold,
k times; `evaluate` scores a model on a separate set (the held-out and unseen files). Used by
bench/classify.py and the tests; needs scikit-learn (a development dependency).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.model_selection import StratifiedKFold

from service.pipeline.classify import classify_local
from service.pipeline.classify_model import LABELLED_SET, LabelledItem, Model, load_labelled
from service.pipeline.classify_train import REGULARISATION_C, train

HOLDOUT_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "classification_holdout.yaml"
# Written by someone who never saw the labelled set, and never read by whoever labels it: accuracy
# on it is the honest measure of phrasing the model has not met.
UNSEEN_SET = HOLDOUT_SET.with_name("classification_unseen.yaml")

__all__ = ["HOLDOUT_SET", "LABELLED_SET", "UNSEEN_SET", "cross_validate", "evaluate", "load_labelled"]


def _decisions(items: Sequence[LabelledItem], model: Model) -> list[tuple[str, str, float, str]]:
    """(expected, decided, confidence, text) per item."""
    out = []
    for item in items:
        result = classify_local(item.inp, model)
        out.append(
            (item.expected, result.category, result.confidence, item.inp.query_text or item.inp.title or "")
        )
    return out


def _report(decisions: list[tuple[str, str, float, str]], threshold: float) -> dict[str, Any]:
    """Accuracy, per category, and how the confidence threshold splits the decisions.

    "accuracy_confident" is the accuracy on the requests the service would *not* send to the
    LLM — the share that matters for answers given without a model call.
    """
    per_category: Counter[str] = Counter()
    per_category_correct: Counter[str] = Counter()
    correct = confident = confident_correct = 0
    mistakes = []
    for expected, decided, confidence, text in decisions:
        hit = expected == decided
        correct += hit
        per_category[expected] += 1
        per_category_correct[expected] += hit
        if confidence >= threshold:
            confident += 1
            confident_correct += hit
        if not hit:
            mistakes.append({"text": text, "expected": expected, "got": decided, "confidence": confidence})
    total = len(decisions)
    return {
        "items": total,
        "accuracy": round(correct / total, 4) if total else 0.0,
        "llm_share": round((total - confident) / total, 4) if total else 0.0,
        "accuracy_confident": round(confident_correct / confident, 4) if confident else 0.0,
        "threshold": threshold,
        "per_category": {
            name: round(per_category_correct[name] / count, 3) for name, count in sorted(per_category.items())
        },
        "mistakes": mistakes,
    }


def evaluate(items: Sequence[LabelledItem], threshold: float, model: Model) -> dict[str, Any]:
    """Scores of `model` on `items`, which must not be part of its training set."""
    return _report(_decisions(items, model), threshold)


def cross_validate(
    items: Sequence[LabelledItem],
    threshold: float,
    *,
    folds: int = 5,
    seed: int = 0,
    c: float = REGULARISATION_C,
) -> dict[str, Any]:
    """Stratified k-fold: every item is decided by a model that never saw it. Deterministic per seed."""
    labels = [item.expected for item in items]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    decisions: list[tuple[str, str, float, str]] = []
    for train_index, test_index in splitter.split(list(range(len(items))), labels):
        model = train([items[i] for i in train_index], c=c)
        decisions.extend(_decisions([items[i] for i in test_index], model))
    report = _report(decisions, threshold)
    report["folds"] = folds
    report["seed"] = seed
    return report
