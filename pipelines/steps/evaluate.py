"""Step 4b - evaluate candidate and comparator from their test-split scores (`pipelines.steps.score`).

Writes `evaluation.json` (discrimination with DeLong CI, PR-AUC, Brier, calibration slope/intercept and ECE,
confusion matrix at the operating threshold) and `model-quality.json` (the same in SageMaker Model Monitor's
binary-classification format, attached to the model package). Aggregates only: no row of the test split.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.jobio import PROCESSING, model_dir, read_json, read_table, write_json
from pipelines.metrics import summarize

log = logging.getLogger("clinops.pipeline.evaluate")


def evaluate(predictions: pd.DataFrame, metadata: dict[str, Any]) -> dict[str, Any]:
    """Metrics of both models at the bundle's operating threshold (`metadata` is the bundle's metadata.json)."""
    y, threshold = predictions["label"].to_numpy(), float(metadata["operating_threshold"])
    candidate = summarize(y, predictions["score"].to_numpy(), threshold)
    comparator = summarize(y, predictions["comparator_score"].to_numpy(), threshold)
    log.info("test AUC %.3f (comparator %.3f), n=%d", candidate["auc"], comparator["auc"], len(y))
    return {
        "model_name": metadata["model_name"],
        "model_version": metadata["model_version"],
        "contract_version": metadata["contract_version"],
        "operating_threshold": threshold,
        "target_sensitivity": metadata["target_sensitivity"],
        "evaluated_on": "test split",
        "candidate": candidate,
        "comparator": comparator | {"estimator": "logistic regression"},
        "auc_gain_over_comparator": candidate["auc"] - comparator["auc"],
    }


def model_quality(evaluation: dict[str, Any]) -> dict[str, Any]:
    """SageMaker Model Monitor's model-quality statistics shape, which Studio renders for a model package."""
    metrics, point = evaluation["candidate"], evaluation["candidate"]["at_threshold"]
    n = point["tp"] + point["fp"] + point["fn"] + point["tn"]

    def value(v: float, sd: float | None = None) -> dict[str, float | None]:
        return {"value": v, "standard_deviation": sd}

    return {
        "version": 0.0,
        "binary_classification_metrics": {
            "confusion_matrix": {"0": {"0": point["tn"], "1": point["fp"]}, "1": {"0": point["fn"], "1": point["tp"]}},
            "recall": value(point["sensitivity"]),
            "precision": value(point["ppv"]),
            "accuracy": value((point["tp"] + point["tn"]) / n),
            "true_positive_rate": value(point["sensitivity"]),
            "true_negative_rate": value(point["specificity"]),
            "false_positive_rate": value(1 - point["specificity"]),
            "false_negative_rate": value(1 - point["sensitivity"]),
            "f1": value(point["f1"]),
            "auc": value(metrics["auc"], metrics["auc_se"]),
            "au_prc": value(metrics["pr_auc"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=PROCESSING / "input/model", help="the bundle, for its metadata.json")
    parser.add_argument("--predictions", default=PROCESSING / "input/predictions")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/evaluation")
    args = parser.parse_args(argv)
    bundle_dir = model_dir(args.model, scratch=tempfile.mkdtemp(prefix="model-"))
    evaluation = evaluate(read_table(args.predictions), read_json(bundle_dir / "metadata.json"))
    write_json(evaluation, args.output / "evaluation.json")
    write_json(model_quality(evaluation), args.output / "model-quality.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
