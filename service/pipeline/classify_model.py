"""The local classifier's model at run time: the exported linear model, scored in pure Python.

Hand-written keyword weights alone did not carry over to phrasings they were not written for, so
the local decision is learnt from labelled requests (resources/classifier/labelled.yaml). Features:
TF-IDF of character n-grams within words (2–5 characters; they absorb Russian case endings and
typos), word unigrams and bigrams (they separate "удали дубликаты" from "найди дубликаты"), the
per-category sums of the hand-written lexicon (classify_rules.py: domain words the labelled set
may lack), and three features of the selected range (nothing / text only / numbers). A linear SVM
with Platt scaling gives class probabilities; the top probability is the classifier's confidence,
which the LLM-fallback threshold is compared with.

The model is trained with scikit-learn at build time (classify_train.py, a development
dependency) and exported to resources/classifier/model.gz: vocabularies, idf weights,
coefficients and the sigmoid calibration. A process only reads that file and scores it here with
the standard library: scikit-learn, scipy and numpy would add ~110 MB to every worker and API
process, and a request has a few hundred non-zero features, which plain Python multiplies in well
under a millisecond. tests/pipeline/test_classify_export.py checks that these scores equal
scikit-learn's and that the file is up to date with the labelled data.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from service.pipeline import categories as cat
from service.pipeline.classify_rules import lexicon_scores

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "classifier"
LABELLED_SET = RESOURCES / "labelled.yaml"
MODEL_FILE = RESOURCES / "model.gz"
FORMAT = 1  # the exported file's layout; bumped when it changes

# Features (shared with the training side, which must build exactly the same vectors).
CHAR_NGRAMS = (2, 5)  # character n-grams within words, padded with a space at both edges
WORD_NGRAMS = (1, 2)
SHAPE_WEIGHT = 2.0  # the selected-range features, next to unit-length text vectors
LEXICON_SCALE = 0.1  # lexicon sums are ~0–20; this brings them near the text features' scale
_WORD = re.compile(r"[^\W\d_]{3,}")
_TOKEN = re.compile(r"\w+")


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


def dense_features(inp: ClassifierInput, text: str) -> list[float]:
    """Selected-range shape and lexicon sums, scaled to sit beside the TF-IDF vectors."""
    count, _, numeric = input_shape(inp.input_data)
    shape = (count == 0, count > 0 and numeric == 0, numeric > 0)
    return [SHAPE_WEIGHT * float(flag) for flag in shape] + [LEXICON_SCALE * v for v in lexicon_scores(text)]


def char_ngrams(text: str) -> list[str]:
    """Character n-grams within words, as scikit-learn's `char_wb` analyzer cuts them."""
    low, high = CHAR_NGRAMS
    grams = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(padded[:n])
            while offset + n < len(padded):
                offset += 1
                grams.append(padded[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once, not once per n
                break
    return grams


def word_ngrams(text: str) -> list[str]:
    """Word unigrams and bigrams, as scikit-learn's `word` analyzer with token pattern `\\w+`."""
    tokens = _TOKEN.findall(text)
    grams = list(tokens)
    for n in range(WORD_NGRAMS[0] + 1, min(WORD_NGRAMS[1], len(tokens)) + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def word_stems(text: str) -> set[str]:
    """Four-letter word beginnings: enough to tell a known word with another ending or a typo."""
    return {word[:4] for word in _WORD.findall(text)}


class Model(Protocol):
    """What the classifier needs of a model: the exported one, or scikit-learn's while training."""

    classes: tuple[str, ...]

    def predict(self, inputs: Sequence[ClassifierInput]) -> list[dict[str, float]]: ...

    def has_evidence(self, inp: ClassifierInput) -> bool: ...


class ByteReader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


def _read_floats(stream: ByteReader, count: int) -> array[float]:
    """`count` little-endian doubles, read in small chunks: no multi-megabyte transient buffer."""
    values = array("d")
    remaining = count * values.itemsize
    while remaining:
        chunk = stream.read(min(remaining, 1 << 16))
        if not chunk:
            raise ValueError("classifier model: the file is truncated")
        values.frombytes(chunk)
        remaining -= len(chunk)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def _read_vocabulary(stream: ByteReader, count: int) -> dict[str, int]:
    return {stream.readline().decode("utf-8").removesuffix("\n"): i for i in range(count)}


class ExportedModel:
    """The fitted model read back from its exported form; `predict` gives class probabilities.

    The file (written by classify_train.py) is gzip'd: one JSON line of small fields, the character
    and then the word vocabulary one n-gram a line in column order (n-grams hold no newline), then
    little-endian doubles: character idf, word idf, and the coefficients feature-major (a feature's
    weights for every class side by side). Read as a stream, so loading never holds the whole file
    or a parsed copy of it: what a process keeps is the vocabularies and one array of doubles."""

    def __init__(self, stream: ByteReader) -> None:
        header = json.loads(stream.readline())
        if header.get("format") != FORMAT:
            raise ValueError(f"classifier model format {header.get('format')!r}, expected {FORMAT}")
        self.classes: tuple[str, ...] = tuple(header["classes"])
        self.fingerprint: str = header["fingerprint"]
        self._intercept = [float(v) for v in header["intercept"]]
        self._calibration = [(float(a), float(b)) for a, b in header["calibration"]]
        self.known_stems = frozenset(header["known_stems"])
        self._chars = _read_vocabulary(stream, header["char_features"])
        self._words = _read_vocabulary(stream, header["word_features"])
        self._char_idf = _read_floats(stream, len(self._chars))
        self._word_idf = _read_floats(stream, len(self._words))
        self._dense_offset = len(self._chars) + len(self._words)
        width = self._dense_offset + len(dense_features(ClassifierInput(), ""))
        self._coef = _read_floats(stream, width * len(self.classes))
        if stream.read(1):
            raise ValueError("classifier model: unexpected data after the coefficients")

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> ExportedModel:
        with gzip.open(path, "rb") as stream:
            return cls(stream)

    @staticmethod
    def _tfidf(
        grams: list[str], vocabulary: dict[str, int], idf: array[float], offset: int
    ) -> dict[int, float]:
        """Sublinear TF × IDF of the known n-grams, L2-normalised (scikit-learn's TfidfVectorizer)."""
        counts = Counter(vocabulary[g] for g in grams if g in vocabulary)
        values = {i: (1.0 + math.log(n)) * idf[i] for i, n in counts.items()}
        norm = math.sqrt(sum(v * v for v in values.values()))
        return {offset + i: v / norm for i, v in values.items()} if norm else {}

    def features(self, inp: ClassifierInput) -> dict[int, float]:
        """The request's non-zero features by column, in the training matrix's column order."""
        text = model_text(inp)
        vector = self._tfidf(char_ngrams(text), self._chars, self._char_idf, 0)
        vector.update(self._tfidf(word_ngrams(text), self._words, self._word_idf, len(self._chars)))
        for i, value in enumerate(dense_features(inp, text)):
            if value:
                vector[self._dense_offset + i] = value
        return vector

    def _probabilities(self, inp: ClassifierInput) -> list[float]:
        k = len(self.classes)
        scores = list(self._intercept)
        coef = self._coef
        for column, value in self.features(inp).items():
            base = column * k
            for c in range(k):
                scores[c] += value * coef[base + c]
        # One-vs-rest Platt scaling per class, then normalised to sum to one (CalibratedClassifierCV).
        raw = [_expit(-(a * s + b)) for s, (a, b) in zip(scores, self._calibration, strict=True)]
        total = sum(raw)
        return [p / total for p in raw] if total else [1.0 / k] * k

    def predict(self, inputs: Sequence[ClassifierInput]) -> list[dict[str, float]]:
        return [dict(zip(self.classes, self._probabilities(inp), strict=True)) for inp in inputs]

    def has_evidence(self, inp: ClassifierInput) -> bool:
        """Whether any word of the request resembles a word of the labelled spreadsheet requests."""
        return bool(word_stems(model_text(inp)) & self.known_stems)


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# --- labelled data ------------------------------------------------------------------------------

# Representative selections for the labelled queries: what a user would have selected.
SAMPLE_DATA: dict[str, list[list[Any]] | None] = {
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


_TEXT_KEYS = ("text", "query", "query_text", "request", "prompt")
_CATEGORY_KEYS = ("category", "expected", "label", "intent")


def _labelled_item(category: str, entry: dict[str, Any]) -> LabelledItem:
    text = next((str(entry[k]) for k in _TEXT_KEYS if isinstance(entry.get(k), str)), "")
    data = entry.get("data", "numeric")
    if isinstance(data, str):
        data = SAMPLE_DATA.get(data)
    inp = ClassifierInput(
        query_text=text,
        input_data=data if isinstance(data, list) and "title" not in entry else None,
        title=entry.get("title"),
        description=entry.get("description"),
    )
    return LabelledItem(cat.resolve_category(category) or category, inp)


def load_labelled(path: Path = LABELLED_SET) -> list[LabelledItem]:
    """Labelled requests: `{category: [{text, data}, …]}`, or a list of items naming their category
    (the layout other authors' evaluation sets may use)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(raw, dict):
        return [_labelled_item(category, entry) for category, entries in raw.items() for entry in entries]
    items = []
    for entry in raw if isinstance(raw, list) else ():
        category = next((entry[k] for k in _CATEGORY_KEYS if isinstance(entry, dict) and entry.get(k)), None)
        if not isinstance(category, str):
            raise ValueError(f"{path.name}: an item names no category")
        items.append(_labelled_item(category, entry))
    return items


@lru_cache(maxsize=1)
def shipped_model() -> ExportedModel:
    """The exported model of the shipped labelled set: read once per process, on first use."""
    return ExportedModel.load()


def warm_up() -> ExportedModel:
    """Load now (at start-up) so the first request does not pay for it."""
    return shipped_model()


def is_trained() -> bool:
    return shipped_model.cache_info().currsize > 0
