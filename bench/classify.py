"""Local classifier benchmark: accuracy on the labelled set and the share that would need the LLM.

    python bench/classify.py [--threshold 0.55] [--target 0.85] [--confident-target 0.95]

Prints JSON; exits 1 when the local accuracy (or the accuracy of the confident decisions) is below
its target. The targets are what the current rules reach on tests/data/classification.yaml with a
small margin, so a regression in the rules fails CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import Settings
from service.pipeline.classify_eval import LABELLED_SET, evaluate, load_labelled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=None, help="default: CLASSIFIER_LLM_THRESHOLD")
    parser.add_argument("--target", type=float, default=0.85, help="minimum overall local accuracy")
    parser.add_argument(
        "--confident-target", type=float, default=0.95, help="minimum accuracy above threshold"
    )
    parser.add_argument("--data", type=Path, default=LABELLED_SET)
    parser.add_argument("--show-mistakes", action="store_true")
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else Settings().classifier_llm_threshold
    report = evaluate(load_labelled(args.data), threshold)
    if not args.show_mistakes:
        report["mistakes"] = len(report["mistakes"])
    report["target"] = args.target
    report["confident_target"] = args.confident_target
    ok = report["accuracy"] >= args.target and report["accuracy_confident"] >= args.confident_target
    report["ok"] = ok
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
