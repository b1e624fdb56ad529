"""Train the local classifier with scikit-learn and export it for run time (a build-time tool).

    python -m service.pipeline.classify_train          # rewrite resources/classifier/model.gz
    python -m service.pipeline.classify_train --check  # exit 1 when the file is out of date

scikit-learn is a development dependency (requirements-dev.txt): a running service only reads the
exported file (classify_model.py). The file is committed because it is small (~1–2 MB) and
because every process, image and test then uses the same model without a build step; its
`fingerprint` is a hash of everything training reads (the labelled set, the lexicon, the
hyper-parameters), and tests/pipeline/test_classify_export.py fails when it no longer matches.

The model: TF-IDF of character and word n-grams plus the dense features of classify_model.py, a
linear SVM (one-vs-rest), and Platt scaling fitted on decision values predicted out of fold
(`CalibratedClassifierCV(ensemble=False)`): one SVM trained on every example, so the exported
file holds one coefficient matrix, not one per calibration fold.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import sklearn
from scipy.sparse import csr_matrix, hstack
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from service.pipeline import categories as cat
from service.pipeline import classify_model as cm
from service.pipeline.classify_rules import RULES

# Chosen by cross-validation on the labelled set (bench/classify.py), never on a held-out set.
REGULARISATION_C = 1.0  # the SVM's inverse regularisation strength
CALIBRATION_FOLDS = 3
AUGMENT_SELECTION = True  # see with_any_selection


class ByteWriter(Protocol):
    def write(self, data: bytes, /) -> int: ...


class TextModel:
    """Vectorisers and classifier fitted together with scikit-learn (training and evaluation)."""

    def __init__(self, *, c: float = REGULARISATION_C) -> None:
        self._chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=cm.CHAR_NGRAMS, sublinear_tf=True, min_df=1
        )
        self._words = TfidfVectorizer(
            analyzer="word", ngram_range=cm.WORD_NGRAMS, sublinear_tf=True, token_pattern=r"\w+"
        )
        self._classifier = CalibratedClassifierCV(
            LinearSVC(C=c, random_state=0), method="sigmoid", cv=CALIBRATION_FOLDS, ensemble=False
        )
        self.known_stems: frozenset[str] = frozenset()
        self.classes: tuple[str, ...] = ()

    def _features(self, inputs: Sequence[cm.ClassifierInput], *, fit: bool) -> csr_matrix:
        texts = [cm.model_text(inp) for inp in inputs]
        if fit:
            chars, words = self._chars.fit_transform(texts), self._words.fit_transform(texts)
        else:
            chars, words = self._chars.transform(texts), self._words.transform(texts)
        dense = np.asarray(
            [cm.dense_features(inp, text) for inp, text in zip(inputs, texts, strict=True)], dtype=float
        )
        return hstack([chars, words, csr_matrix(dense)]).tocsr()

    def fit(self, inputs: Sequence[cm.ClassifierInput], labels: Sequence[str]) -> TextModel:
        self._classifier.fit(self._features(inputs, fit=True), list(labels))
        self.classes = tuple(str(name) for name in self._classifier.classes_)
        # Words of off-topic examples are no evidence of a spreadsheet task.
        self.known_stems = frozenset(
            stem
            for inp, label in zip(inputs, labels, strict=True)
            if label != cat.UNCERTAIN
            for stem in cm.word_stems(cm.model_text(inp))
        )
        return self

    def predict(self, inputs: Sequence[cm.ClassifierInput]) -> list[dict[str, float]]:
        probabilities = self._classifier.predict_proba(self._features(inputs, fit=False))
        return [dict(zip(self.classes, (float(p) for p in row), strict=True)) for row in probabilities]

    def has_evidence(self, inp: cm.ClassifierInput) -> bool:
        return bool(cm.word_stems(cm.model_text(inp)) & self.known_stems)

    def export(self, fingerprint: str, stream: ByteWriter) -> None:
        """Write everything the run-time scorer needs (layout: classify_model.ExportedModel)."""
        (fitted,) = self._classifier.calibrated_classifiers_
        svm = fitted.estimator
        if tuple(str(c) for c in svm.classes_) != self.classes:
            raise RuntimeError("the SVM's classes differ from the calibrated classifier's")
        chars, words = _by_index(self._chars.vocabulary_), _by_index(self._words.vocabulary_)
        header = {
            "format": cm.FORMAT,
            "fingerprint": fingerprint,
            "trained_with": f"scikit-learn {sklearn.__version__}",
            "classes": list(self.classes),
            "intercept": [float(v) for v in svm.intercept_],
            "calibration": [[float(c.a_), float(c.b_)] for c in fitted.calibrators],
            "known_stems": sorted(self.known_stems),
            "char_features": len(chars),
            "word_features": len(words),
        }
        stream.write(json.dumps(header, ensure_ascii=False).encode() + b"\n")
        for gram in (*chars, *words):
            if "\n" in gram:
                raise RuntimeError(f"an n-gram holds a newline: {gram!r}")
            stream.write(gram.encode() + b"\n")
        for values in (self._chars.idf_, self._words.idf_, np.ascontiguousarray(svm.coef_.T)):
            stream.write(np.asarray(values, dtype="<f8").tobytes())


def _by_index(vocabulary: dict[str, int]) -> list[str]:
    return [gram for gram, _ in sorted(vocabulary.items(), key=lambda item: item[1])]


def with_any_selection(items: Sequence[cm.LabelledItem]) -> list[cm.LabelledItem]:
    """The items, plus each request labelled with no range or a text range once more with a
    numeric range selected: a user asking for a new table or a formula often has some numbers
    selected anyway, and the model must not take the selection for the request."""
    numeric = cm.SAMPLE_DATA["numeric"]
    extra = [
        cm.LabelledItem(item.expected, replace(item.inp, input_data=numeric))
        for item in items
        if not (item.inp.title or item.inp.description) and item.inp.input_data is not numeric
    ]
    return [*items, *extra]


def train(items: Sequence[cm.LabelledItem], *, c: float = REGULARISATION_C) -> TextModel:
    items = with_any_selection(items) if AUGMENT_SELECTION else list(items)
    return TextModel(c=c).fit([item.inp for item in items], [item.expected for item in items])


def fingerprint(labelled: Path = cm.LABELLED_SET) -> str:
    """A hash of every input of training: when it changes, the exported model is out of date."""
    digest = hashlib.sha256(labelled.read_bytes())
    settings = {
        "format": cm.FORMAT,
        "c": REGULARISATION_C,
        "folds": CALIBRATION_FOLDS,
        "augment_selection": AUGMENT_SELECTION,
        "chars": cm.CHAR_NGRAMS,
        "words": cm.WORD_NGRAMS,
        "shape": cm.SHAPE_WEIGHT,
        "lexicon_scale": cm.LEXICON_SCALE,
        "lexicon": {name: [list(rule) for rule in rules] for name, rules in sorted(RULES.items())},
        "sample_data": cm.SAMPLE_DATA,
    }
    digest.update(json.dumps(settings, ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def exported_bytes(labelled: Path = cm.LABELLED_SET) -> bytes:
    """The gzip'd JSON of a model trained on `labelled`; byte-for-byte reproducible (mtime 0)."""
    model = train(cm.load_labelled(labelled))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as stream:
        model.export(fingerprint(labelled), stream)
    return buffer.getvalue()


def stored_fingerprint(path: Path = cm.MODEL_FILE) -> str | None:
    try:
        with gzip.open(path, "rb") as stream:
            return str(json.loads(stream.readline()).get("fingerprint"))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    parser.add_argument("--out", type=Path, default=cm.MODEL_FILE)
    args = parser.parse_args(argv)
    if args.check:
        if stored_fingerprint(args.out) == fingerprint():
            print(f"{args.out} is up to date")
            return 0
        print(f"{args.out} is out of date: run python -m service.pipeline.classify_train", file=sys.stderr)
        return 1
    payload = exported_bytes()
    args.out.write_bytes(payload)
    print(f"wrote {args.out} ({len(payload) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
