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

import numpy as np
import pandas as pd

from pipelines.jobio import PROCESSING, model_dir, read_json, read_table, write_json
from pipelines.metrics import summarize

log = logging.getLogger("clinops.pipeline.evaluate")


CURVE_POINTS = 60  # enough for a smooth chart; few enough that no point stands for a single patient
CALIBRATION_BINS = 10


def curves(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """ROC and calibration curves for the card's charts: aggregates of many patients, never single rows.

    ROC points are taken at score quantiles (each step spans ~1/CURVE_POINTS of the test split); the
    calibration curve is deciles of predicted risk with their observed event rate and size.
    """
    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    positives, negatives = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    thresholds = np.unique(np.quantile(score, np.linspace(0, 1, CURVE_POINTS + 1)))[::-1]
    roc = [[0.0, 0.0]]
    for t in thresholds:
        flagged = score >= t
        roc.append([float((flagged & (y == 0)).sum() / negatives), float((flagged & (y == 1)).sum() / positives)])
    roc.append([1.0, 1.0])
    edges = np.unique(np.quantile(score, np.linspace(0, 1, CALIBRATION_BINS + 1)))
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, max(len(edges) - 2, 0))
    calibration = [
        {
            "mean_predicted": float(score[bins == b].mean()),
            "observed": float(y[bins == b].mean()),
            "n": int((bins == b).sum()),
        }
        for b in np.unique(bins)
    ]
    return {"roc": roc, "calibration": calibration}


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
        "curves": {
            "candidate": curves(y, predictions["score"].to_numpy()),
            "comparator": curves(y, predictions["comparator_score"].to_numpy()),
        },
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
