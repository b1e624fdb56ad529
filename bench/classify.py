"""Local classifier benchmark: cross-validated, held-out and unseen accuracy; time to train.

    python bench/classify.py [--threshold 0.65] [--target 0.90] [--folds 5] [--seed 0] [--show-mistakes]

Accuracy is never measured on the data a model was trained on: "cross_validation" trains on k−1
stratified folds of resources/classifier/labelled.yaml and decides the remaining fold, k times;
"holdout" trains on the whole labelled set and decides tests/data/classification_holdout.yaml,
which nothing is tuned on; "unseen" decides tests/data/classification_unseen.yaml (when present),
written by another author and never read by whoever labels the training data — so only its
figures are printed, never its mistakes. "shipped" scores the exported model the service runs
(resources/classifier/model.gz) on the unseen set. Prints JSON; exits 1 when the
cross-validated accuracy is below --target or the unseen accuracy below --unseen-target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import Settings
from service.pipeline.classify_eval import (
    HOLDOUT_SET,
    LABELLED_SET,
    UNSEEN_SET,
    cross_validate,
    evaluate,
    load_labelled,
)
from service.pipeline.classify_model import shipped_model
from service.pipeline.classify_train import train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=None, help="default: CLASSIFIER_LLM_THRESHOLD")
    parser.add_argument("--target", type=float, default=0.90, help="minimum cross-validated accuracy")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=LABELLED_SET)
    parser.add_argument("--holdout", type=Path, default=HOLDOUT_SET)
    parser.add_argument("--unseen-target", type=float, default=0.92, help="minimum unseen accuracy")
    parser.add_argument("--show-mistakes", action="store_true", help="of the cross-validation and holdout")
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else Settings().classifier_llm_threshold
    labelled = load_labelled(args.data)

    timings, cpu = [], []
    for _ in range(3):  # best of three: the machine is shared, the minimum is the model's own cost
        started, started_cpu = time.perf_counter(), time.process_time()
        model = train(labelled)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    reports = {
        "cross_validation": cross_validate(labelled, threshold, folds=args.folds, seed=args.seed),
        "holdout": evaluate(load_labelled(args.holdout), threshold, model),
    }
    if UNSEEN_SET.exists():
        reports["unseen"] = evaluate(load_labelled(UNSEEN_SET), threshold, shipped_model())
    for name, report in reports.items():
        if not args.show_mistakes or name == "unseen":
            report["mistakes"] = len(report["mistakes"])
    ok = reports["cross_validation"]["accuracy"] >= args.target
    if "unseen" in reports:
        print(f"unseen set accuracy: {reports['unseen']['accuracy']:.3f} (target {args.unseen_target})")
        ok = ok and reports["unseen"]["accuracy"] >= args.unseen_target
    summary = {
        "labelled_items": len(labelled),
        "train_seconds_best_of_3": round(min(timings), 3),
        "train_cpu_seconds_best_of_3": round(min(cpu), 3),
        **reports,
        "target": args.target,
        "ok": ok,
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
