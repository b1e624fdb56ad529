"""The local classifier's model: character n-grams of the request with a linear classifier.

Hand-written keyword weights alone did not carry over to phrasings they were not written for, so
the local decision is learnt from labelled requests (resources/classifier/labelled.yaml). Features:
TF-IDF of character n-grams within words (2–5 characters; they absorb Russian case endings and
typos), word unigrams and bigrams (they separate "удали дубликаты" from "найди дубликаты"), the
per-category sums of the hand-written lexicon (classify_rules.py: domain words the labelled set
may lack), and three features of the selected range (nothing / text only / numbers).
A linear SVM, calibrated with Platt scaling on internal folds, gives class probabilities; the top
probability is the classifier's confidence, which the LLM-fallback threshold is compared with.

Training takes a fraction of a second; it happens once per process, never at import: at a
worker's start-up (`warm_up`), and in an API process at its first classification.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from service.pipeline import categories as cat
from service.pipeline.classify_rules import lexicon_scores

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

# numpy, scipy and scikit-learn are imported where a model is trained or used, not here: they add
# ~110 MB to a process, and an API process needs them only once someone asks it to classify.

LABELLED_SET = Path(__file__).resolve().parents[2] / "resources" / "classifier" / "labelled.yaml"

# Chosen by cross-validation on the labelled set (bench/classify.py), never on the held-out set.
REGULARISATION_C = 1.0  # the SVM's inverse regularisation strength
SHAPE_WEIGHT = 2.0  # the selected-range features, next to unit-length text vectors
LEXICON_SCALE = 0.1  # lexicon sums are ~0–20; this brings them near the text features' scale
CALIBRATION_FOLDS = 3
_WORD = re.compile(r"[^\W\d_]{3,}")


@dataclass(frozen=True, slots=True)
class ClassifierInput:
    query_text: str = ""
    input_data: list[list[Any]] | None = None
    title: str | None = None
    description: str | None = None


def normalise(text: str) -> str:
    """Lower case, ё→е, punctuation to spaces (keeping '?' and '-'), single spaces."""
    text = text.lower().replace("ё", "е")
    text = re.sub(r"[^\w\s?\-]", " ", text)
    return " ".join(text.split())


def input_shape(data: list[list[Any]] | None) -> tuple[int, int, int]:
    """(rows, columns, numeric columns) of the input; numeric = most non-empty cells are numbers."""
    if not data:
        return (0, 0, 0)
    width = max((len(row) for row in data if isinstance(row, list)), default=0)
    numeric = 0
    for col in range(width):
        values = [
            row[col] for row in data[1:] if isinstance(row, list) and col < len(row) and row[col] is not None
        ]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if values and len(numbers) * 2 > len(values):
            numeric += 1
    return (len(data), width, numeric)


def model_text(inp: ClassifierInput) -> str:
    """What the model reads: the query, else the process title and description."""
    return normalise(inp.query_text or f"{inp.title or ''} {inp.description or ''}")


def _dense_features(inputs: Sequence[ClassifierInput], texts: Sequence[str]) -> csr_matrix:
    """Selected-range shape and lexicon sums, scaled to sit beside the TF-IDF vectors."""
    import numpy as np
    from scipy.sparse import csr_matrix

    rows = []
    for inp, text in zip(inputs, texts, strict=True):
        count, _, numeric = input_shape(inp.input_data)
        shape = [count == 0, count > 0 and numeric == 0, numeric > 0]
        rows.append(
            [SHAPE_WEIGHT * float(flag) for flag in shape] + [LEXICON_SCALE * v for v in lexicon_scores(text)]
        )
    return csr_matrix(np.asarray(rows, dtype=float))


def word_stems(text: str) -> set[str]:
    """Four-letter word beginnings: enough to tell a known word with another ending or a typo."""
    return {word[:4] for word in _WORD.findall(text)}


class TextModel:
    """Vectorisers and classifier fitted together; `predict` gives class probabilities."""

    def __init__(self, *, c: float = REGULARISATION_C) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
        self._words = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\w+"
        )
        self._classifier = CalibratedClassifierCV(
            LinearSVC(C=c, random_state=0), method="sigmoid", cv=CALIBRATION_FOLDS
        )
        self.known_stems: frozenset[str] = frozenset()
        self.classes: tuple[str, ...] = ()

    def _features(self, inputs: Sequence[ClassifierInput], *, fit: bool) -> csr_matrix:
        from scipy.sparse import hstack

        texts = [model_text(inp) for inp in inputs]
        if fit:
            chars, words = self._chars.fit_transform(texts), self._words.fit_transform(texts)
        else:
            chars, words = self._chars.transform(texts), self._words.transform(texts)
        return hstack([chars, words, _dense_features(inputs, texts)]).tocsr()

    def fit(self, inputs: Sequence[ClassifierInput], labels: Sequence[str]) -> TextModel:
        self._classifier.fit(self._features(inputs, fit=True), list(labels))
        self.classes = tuple(str(name) for name in self._classifier.classes_)
        # Words of off-topic examples are no evidence of a spreadsheet task.
        self.known_stems = frozenset(
            stem
            for inp, label in zip(inputs, labels, strict=True)
            if label != cat.UNCERTAIN
            for stem in word_stems(model_text(inp))
        )
        return self

    def predict(self, inputs: Sequence[ClassifierInput]) -> list[dict[str, float]]:
        probabilities = self._classifier.predict_proba(self._features(inputs, fit=False))
        return [dict(zip(self.classes, (float(p) for p in row), strict=True)) for row in probabilities]

    def has_evidence(self, inp: ClassifierInput) -> bool:
        """Whether any word of the request resembles a word of the labelled spreadsheet requests."""
        return bool(word_stems(model_text(inp)) & self.known_stems)


# --- labelled data ------------------------------------------------------------------------------

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


def train(items: Sequence[LabelledItem], *, c: float = REGULARISATION_C) -> TextModel:
    return TextModel(c=c).fit([item.inp for item in items], [item.expected for item in items])


@lru_cache(maxsize=1)
def shipped_model() -> TextModel:
    """The model trained on the shipped labelled set: one per process, built on first use."""
    return train(load_labelled())


def warm_up() -> TextModel:
    """Train now (at start-up) so the first request does not pay for it."""
    return shipped_model()


def is_trained() -> bool:
    return shipped_model.cache_info().currsize > 0
