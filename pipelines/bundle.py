"""The model bundle: the directory a training run produces and an inference container serves.

Layout (SageMaker packs it as model.tar.gz; MLflow keeps it under the run's `bundle/` artifacts):

    model.joblib      the fitted estimator: `predict_proba(frame)` on a pandas DataFrame holding the contract's
                      feature columns (`metadata.json` lists them; categories as strings, numbers as floats,
                      missing as NaN/None). Column 1 of the result is the probability of the positive label.
    comparator.joblib the simple logistic baseline it was compared with; evaluation only, never served.
    contract.yaml     the feature contract the training data met (the server validates requests with it).
    metadata.json     {"format_version": 1, "model_name", "model_version", "feature_columns",
                       "categorical_features", "numeric_features", "label", "operating_threshold",
                       "target_sensitivity", "dataset_sha256", "contract_name", "contract_version",
                       "contract_fingerprint", "trained_at" (ISO 8601 UTC), "estimator", "sklearn_version"}
    baseline.json     reference distributions for drift monitoring:
                      {"format_version": 1, "features_computed_on": "train split", "rows": int,
                       "features": {
                         "<numeric>": {"kind": "numeric", "bin_edges": [e0 .. ek], "proportions": [p1 .. pk],
                                       "mean": float, "sd": float, "missing_fraction": float},
                         "<categorical>": {"kind": "categorical", "proportions": {"<level>": p, ...},
                                           "missing_fraction": float}},
                       "score": {"computed_on": "calibration split", "bin_edges": [...], "proportions": [...],
                                 "mean": float, "sd": float},
                       "attributions": {"computed_on": "train split", "rows": int, "units": "calibrated log-odds",
                                        "expected_value": float, "mean_abs": {"<feature>": float, ...}}}
                      (`attributions`: mean |exact contribution| per feature, `pipelines.explain`; absent when
                      the model cannot be explained exactly)

Numeric bin edges are the 0, 10, ..., 100th percentiles of the non-missing training values, so there are up
to 10 bins (fewer when a discrete feature has tied percentiles). Bins are [e(i-1), e(i)), the last one closed;
when comparing production data, count values below e0 in the first bin and above ek in the last.
Proportions are over non-missing values and sum to 1; `missing_fraction` is over all rows. The score
baseline uses the calibration split because the boosted model never saw it (training scores are optimistic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

from pipelines.contracts import Contract, contract_fingerprint, contract_yaml, load_contract
from pipelines.jobio import write_json

FORMAT_VERSION = 1
BINS = 10


# No baseline may hold one patient's value. The outer bin edges are quantiles at least this far in from each end
# (and at least MIN_TAIL_ROWS values in), never the training minimum or maximum; the tails fold into the outer bins.
TAIL_QUANTILE = 0.005
MIN_TAIL_ROWS = 11  # the small-cell threshold used across clinops reports
SAFE_HARBOR_AGE_CAP = 90  # HIPAA Safe Harbor: ages over 89 are reported as one "90 or older" category


def is_age_column(name: str, unit: str | None) -> bool:
    """An age in years, by name and unit: these are top-coded before any statistic is kept."""
    named = name == "age" or name.startswith("age_") or name.endswith("_age")
    return named and unit in (None, "years", "year", "y")


def _numeric_baseline(values: pd.Series, top_code: float | None = None) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=float)
    if present.size == 0:
        return {
            "kind": "numeric",
            "bin_edges": [],
            "proportions": [],
            "mean": None,
            "sd": None,
            "missing_fraction": 1.0,
        }
    if top_code is not None:
        present = np.minimum(present, top_code)
    tail = min(0.25, max(TAIL_QUANTILE, MIN_TAIL_ROWS / present.size))
    levels = np.concatenate([[tail], np.linspace(0, 1, BINS + 1)[1:-1], [1 - tail]])
    edges = np.unique(np.quantile(present, np.clip(levels, tail, 1 - tail)))
    if edges.size == 1:  # a constant column (or one dominant value): one degenerate bin
        edges = np.array([edges[0], edges[0]])
    counts, _ = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)
    below, above = float((present < edges[0]).mean()), float((present > edges[-1]).mean())
    outside = below + above
    return {
        "kind": "numeric",
        "bin_edges": edges.tolist(),
        "proportions": (counts / counts.sum()).tolist(),
        "mean": float(present.mean()),
        "sd": float(present.std(ddof=1)) if present.size > 1 else 0.0,
        "missing_fraction": float(values.isna().mean()),
        # Training values beyond the outer edges (folded into the outer bins): what "outside" looks like when
        # nothing has changed, so monitoring reports only the excess.
        "tail_share": outside,
        # ... per side, so the binned KS places the baseline's tails beyond the edges as it places the window's
        "tail_below": below,
        "tail_above": above,
        **({"top_coded_at": top_code} if top_code is not None else {}),
    }


def _categorical_baseline(values: pd.Series, levels: list[str]) -> dict[str, Any]:
    present = values.dropna().astype(str)
    shares = present.value_counts(normalize=True)
    return {
        "kind": "categorical",
        "proportions": {level: float(shares.get(level, 0.0)) for level in levels},
        "missing_fraction": float(values.isna().mean()),
    }


def compute_baseline(
    train_features: pd.DataFrame, contract: Contract, calibration_scores: np.ndarray
) -> dict[str, Any]:
    features = {}
    for name in contract.feature_columns:
        spec = contract.columns[name]
        column = train_features[name]
        features[name] = (
            _categorical_baseline(column, spec.categories or [])
            if spec.dtype == "category"
            else _numeric_baseline(column, SAFE_HARBOR_AGE_CAP if is_age_column(name, spec.unit) else None)
        )
    score = _numeric_baseline(pd.Series(calibration_scores))
    score.pop("missing_fraction")
    score.pop("kind")
    return {
        "format_version": FORMAT_VERSION,
        "features_computed_on": "train split",
        "rows": len(train_features),
        "features": features,
        "score": {"computed_on": "calibration split", **score},
    }


@dataclass
class Bundle:
    path: Path
    model: Any
    comparator: Any
    contract: Contract
    metadata: dict[str, Any]
    baseline: dict[str, Any]


def model_version(trained_at: datetime, dataset_sha256: str) -> str:
    return f"{trained_at:%Y%m%d.%H%M%S}-{dataset_sha256.removeprefix('sha256:')[:8]}"


def write_bundle(
    path: Path,
    *,
    model: Any,
    comparator: Any,
    contract: Contract,
    threshold: float,
    target_sensitivity: float,
    baseline: dict[str, Any],
    dataset_sha256: str,
    trained_at: datetime,
    estimator: str,
) -> Bundle:
    path.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path / "model.joblib")
    joblib.dump(comparator, path / "comparator.joblib")
    (path / "contract.yaml").write_text(contract_yaml(contract))
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_name": contract.name,
        "model_version": model_version(trained_at, dataset_sha256),
        "feature_columns": contract.feature_columns,
        "categorical_features": contract.categorical_features,
        "numeric_features": contract.numeric_features,
        "label": contract.label.column,
        "operating_threshold": threshold,
        "target_sensitivity": target_sensitivity,
        "dataset_sha256": dataset_sha256,
        "contract_name": contract.name,
        "contract_version": contract.version,
        "contract_fingerprint": contract_fingerprint(contract),
        "trained_at": trained_at.isoformat(),
        "estimator": estimator,
        "sklearn_version": sklearn.__version__,
    }
    write_json(metadata, path / "metadata.json")
    write_json(baseline, path / "baseline.json")
    return Bundle(path, model, comparator, contract, metadata, baseline)


def read_bundle(path: Path) -> Bundle:
    return Bundle(
        path=path,
        model=joblib.load(path / "model.joblib"),
        comparator=joblib.load(path / "comparator.joblib"),
        contract=load_contract(path / "contract.yaml"),
        metadata=json.loads((path / "metadata.json").read_text()),
        baseline=json.loads((path / "baseline.json").read_text()),
    )
