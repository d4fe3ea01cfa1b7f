"""Step 3 - train the candidate (calibrated gradient boosting) and a simple baseline beside it.

The candidate is scikit-learn's HistGradientBoostingClassifier (native missing values and categories), frozen
and then calibrated with a sigmoid on the calibration split, where the operating threshold is also chosen.
The comparator is a regularised logistic regression on imputed, scaled numbers and one-hot categories: if
boosting cannot beat it clearly, the card says so. Both are plain scikit-learn objects (no clinops classes
inside the pickle), so any scikit-learn inference container can load them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from pipelines.bundle import Bundle, compute_baseline, write_bundle
from pipelines.contracts import Contract, load_contract
from pipelines.explain import Unexplainable, attribution_summary, explainer_for
from pipelines.jobio import read_json, read_table, report_failure
from pipelines.metrics import threshold_for_sensitivity
from pipelines.settings import TrainingSettings

log = logging.getLogger("clinops.pipeline.train")
ESTIMATOR = "HistGradientBoostingClassifier + sigmoid calibration (CalibratedClassifierCV over FrozenEstimator)"


@dataclass
class Trained:
    candidate: CalibratedClassifierCV
    comparator: Pipeline
    threshold: float
    calibration_scores: np.ndarray
    details: dict[str, Any]


def features(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The model's input: the contract's feature columns, in contract order, categories as strings."""
    out = frame.reindex(columns=contract.feature_columns)
    for name in contract.categorical_features:
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    for name in contract.numeric_features:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
    return out


def build_candidate(contract: Contract, settings: TrainingSettings) -> Pipeline:
    categorical, numeric = contract.categorical_features, contract.numeric_features
    encoder = OrdinalEncoder(
        categories=[contract.columns[c].categories for c in categorical],
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        dtype=np.float64,
    )
    prepare = ColumnTransformer(
        [("categorical", encoder, categorical), ("numeric", "passthrough", numeric)], verbose_feature_names_out=False
    )
    booster = HistGradientBoostingClassifier(
        learning_rate=settings.learning_rate,
        max_iter=settings.max_iter,
        max_leaf_nodes=settings.max_leaf_nodes,
        min_samples_leaf=settings.min_samples_leaf,
        l2_regularization=settings.l2_regularization,
        categorical_features=[True] * len(categorical) + [False] * len(numeric),
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=settings.seed,
    )
    return Pipeline([("prepare", prepare), ("booster", booster)])


def build_comparator(contract: Contract, settings: TrainingSettings) -> Pipeline:
    categorical, numeric = contract.categorical_features, contract.numeric_features
    numbers = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    onehot = OneHotEncoder(categories=[contract.columns[c].categories for c in categorical], handle_unknown="ignore")
    prepare = ColumnTransformer([("numeric", numbers, numeric), ("categorical", onehot, categorical)])
    return Pipeline([("prepare", prepare), ("logistic", LogisticRegression(C=1.0, max_iter=2000))])


def train(
    train_frame: pd.DataFrame, calibration_frame: pd.DataFrame, contract: Contract, settings: TrainingSettings
) -> Trained:
    label = contract.label.column
    x_train, y_train = features(train_frame, contract), train_frame[label].to_numpy()
    x_cal, y_cal = features(calibration_frame, contract), calibration_frame[label].to_numpy()
    with threadpool_limits(limits=settings.threads or None):
        booster = build_candidate(contract, settings).fit(x_train, y_train)
        candidate = CalibratedClassifierCV(FrozenEstimator(booster), method="sigmoid").fit(x_cal, y_cal)
        comparator = build_comparator(contract, settings).fit(x_train, y_train)
        scores = candidate.predict_proba(x_cal)[:, 1]
    threshold = threshold_for_sensitivity(y_cal, scores, settings.target_sensitivity)
    n_iter = int(booster.named_steps["booster"].n_iter_)
    log.info("trained %s: %d boosting iterations, operating threshold %.4f", contract.name, n_iter, threshold)
    details = {
        "boosting_iterations": n_iter,
        "calibration": "sigmoid",
        "calibration_rows": len(x_cal),
        "train_rows": len(x_train),
        **settings.model_dump(),
    }
    return Trained(candidate, comparator, threshold, scores, details)


def signature_frame(contract: Contract) -> pd.DataFrame:
    """One row of placeholder values for a logged model's signature: column names and types, never a patient's
    values (the first category of each categorical feature, 0.0 for each numeric one)."""
    row = {
        name: contract.columns[name].categories[0] if name in contract.categorical_features else 0.0  # type: ignore[index]
        for name in contract.feature_columns
    }
    return features(pd.DataFrame([row]), contract)


def save(
    trained: Trained,
    train_frame: pd.DataFrame,
    contract: Contract,
    settings: TrainingSettings,
    path: Path,
    *,
    dataset_sha256: str,
    trained_at: datetime,
) -> Bundle:
    baseline = compute_baseline(features(train_frame, contract), contract, trained.calibration_scores)
    try:  # the reference for attribution drift and the card's global importance
        explainer = explainer_for(trained.candidate, contract.feature_columns)
        baseline["attributions"] = attribution_summary(explainer, features(train_frame, contract), "train split")
    except Unexplainable as exc:
        log.warning("no attribution baseline: %s", exc)
    return write_bundle(
        path,
        model=trained.candidate,
        comparator=trained.comparator,
        contract=contract,
        threshold=trained.threshold,
        target_sensitivity=settings.target_sensitivity,
        baseline=baseline,
        dataset_sha256=dataset_sha256,
        trained_at=trained_at,
        estimator=ESTIMATOR,
    )


def _hyperparameters(path: Path) -> TrainingSettings:
    """SageMaker passes hyperparameters as strings; pydantic converts them to the declared types."""
    raw = json.loads(path.read_text()) if path.is_file() else {}
    known = set(TrainingSettings.model_fields)
    return TrainingSettings(
        **{k: json.loads(v) if v.startswith(("[", "{")) else v for k, v in raw.items() if k in known}
    )


def main(argv: list[str] | None = None) -> int:
    channels = Path(os.environ.get("SM_INPUT_DIR", "/opt/ml/input")) / "data"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", channels / "train"))
    parser.add_argument("--calibration", default=os.environ.get("SM_CHANNEL_CALIBRATION", channels / "calibration"))
    parser.add_argument("--contract", default=os.environ.get("SM_CHANNEL_CONTRACT", channels / "contract"))
    parser.add_argument(
        "--summary",
        default=os.environ.get("SM_CHANNEL_SUMMARY", channels / "summary"),
        help="the split summary, which carries the dataset hash",
    )
    parser.add_argument("--hyperparameters", type=Path, default=Path("/opt/ml/input/config/hyperparameters.json"))
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")))
    args = parser.parse_args(argv)
    try:
        settings = _hyperparameters(args.hyperparameters)
        contract = load_contract(args.contract)
        train_frame, calibration_frame = read_table(args.train), read_table(args.calibration)
        lineage = read_json(args.summary)
        trained = train(train_frame, calibration_frame, contract, settings)
        save(
            trained,
            train_frame,
            contract,
            settings,
            args.model_dir,
            dataset_sha256=lineage["dataset_sha256"],
            trained_at=datetime.now(UTC),
        )
    except Exception as exc:  # a training job must leave its reason where SageMaker shows it
        report_failure(f"training failed: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
