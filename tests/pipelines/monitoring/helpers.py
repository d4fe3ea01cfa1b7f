"""Shared test data: the generator's readmission table, a toy risk model, and a baseline computed by the
training pipeline's own code (`pipelines.bundle.compute_baseline`), cached per process."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.bundle import compute_baseline
from pipelines.contracts import Contract, builtin_contract_path, contract_yaml, load_contract
from pipelines.data.synthetic import Injections, generate_readmission
from pipelines.monitoring.drift.baseline import Baseline, parse_baseline
from pipelines.steps.train import features

BASELINE_ROWS = 6000


@lru_cache(maxsize=1)
def contract() -> Contract:
    return load_contract(builtin_contract_path("readmission-risk"))


def toy_scores(frame: pd.DataFrame) -> np.ndarray:
    """A fixed logistic model of a few features: deterministic, so score drift follows input drift."""
    x = features(frame, contract())
    z = (
        -3.2
        + 0.35 * x["prior_admissions_12m"].fillna(0)
        + 0.15 * x["charlson_index"].fillna(0)
        + 0.25 * np.log(x["creatinine"].fillna(1.0).clip(0.1))
        + 0.01 * (x["age"].fillna(60) - 60)
    )
    return (1 / (1 + np.exp(-z))).to_numpy()


def window(rows: int, seed: int, injections: Injections | None = None) -> pd.DataFrame:
    """A current window as the drift job sees it: feature columns (as sent) and the model's score."""
    table = generate_readmission(rows, seed=seed, injections=injections)
    kept = [c for c in table.columns if c in contract().feature_columns or c not in contract().columns]
    frame = table[kept].copy()
    frame["score"] = toy_scores(table.rename(columns={"los_days": "length_of_stay_days"}))
    return frame


@lru_cache(maxsize=1)
def baseline_doc() -> str:
    train = generate_readmission(BASELINE_ROWS, seed=1000)
    doc = compute_baseline(features(train, contract()), contract(), toy_scores(train))
    return json.dumps(doc)


def _metadata() -> dict[str, object]:
    return {"model_name": "readmission-risk", "model_version": "test", "feature_columns": contract().feature_columns}


def baseline() -> Baseline:
    metadata = _metadata()
    return parse_baseline(json.loads(baseline_doc()), contract=contract(), metadata=metadata, source="test")


def write_bundle_files(folder: Path) -> Path:
    """baseline.json, metadata.json and contract.yaml as a model bundle has them (no model needed for drift)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "baseline.json").write_text(baseline_doc())
    metadata = _metadata()
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / "contract.yaml").write_text(contract_yaml(contract()))
    return folder / "baseline.json"
