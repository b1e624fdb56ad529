"""The exported classifier: the scores a process computes without scikit-learn are scikit-learn's,
and the committed file is the one the labelled data and the lexicon give today."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from service.pipeline.classify_model import MODEL_FILE, ClassifierInput, ExportedModel, load_labelled
from service.pipeline.classify_train import fingerprint, stored_fingerprint, train


def test_committed_model_is_up_to_date_with_the_labelled_data() -> None:
    assert stored_fingerprint(MODEL_FILE) == fingerprint(), (
        "resources/classifier/model.gz is out of date: run python -m service.pipeline.classify_train"
    )


def test_exported_scores_equal_scikit_learns_on_the_labelled_set() -> None:
    items = load_labelled()
    inputs = [item.inp for item in items] + [
        ClassifierInput("совсем незнакомые слова", None),
        ClassifierInput("", [["a", "b"], [1, 2]]),
        ClassifierInput("", None, title="Счета", description="сверяем вручную"),
    ]
    reference = train(items)
    exported = ExportedModel.load(MODEL_FILE)
    assert exported.classes == reference.classes
    for inp, want, got in zip(inputs, reference.predict(inputs), exported.predict(inputs), strict=True):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, abs=1e-9), inp
        assert exported.has_evidence(inp) == reference.has_evidence(inp)


def test_a_file_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        ExportedModel(io.BytesIO(b'{"format": 999}\n'))


def test_the_runtime_classifier_imports_no_scientific_stack() -> None:
    code = (
        "import sys\n"
        "from service.pipeline.classify import ClassifierInput, classify_local\n"
        "print(classify_local(ClassifierInput('Построй график выручки', [['a', 1]])).category)\n"
        "import json; print(json.dumps(sorted(m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    category, loaded = done.stdout.strip().splitlines()
    assert category == "data-chart"
    assert json.loads(loaded) == []
