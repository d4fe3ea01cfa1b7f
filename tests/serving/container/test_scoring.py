"""The compiled scorer is exact, and anything it cannot reproduce is served through scikit-learn."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from pipelines.contracts import load_contract
from pipelines.steps.train import features
from serving.container import forest, scoring
from serving.container.artifact import load_served_model
from serving.container.scoring import EstimatorScorer, compile_scorer, synthetic_features
from tests.serving.container.client import READMISSION_ROW


def _booster(model: Any) -> Any:
    return model.calibrated_classifiers_[0].estimator.estimator.named_steps["booster"]


@pytest.fixture(scope="module")
def model(bundle_dir: Path) -> Any:
    return joblib.load(bundle_dir / "model.joblib")


def test_forest_matches_scikit_learn_on_odd_inputs(model: Any) -> None:
    """Booster inputs (after its own encoder): known codes, fractions, negatives, codes never seen, NaN."""
    booster = _booster(model)
    ensemble = forest.compile_ensemble(booster)
    rng = np.random.default_rng(11)
    x = rng.normal(20, 30, size=(400, booster.n_features_in_))
    categorical = np.flatnonzero(booster.is_categorical_)
    x[:, categorical] = rng.choice([0, 1, 2, 3, 5, -1, 7, 2.7, 255], size=(400, categorical.size))
    x[rng.random(x.shape) < 0.2] = np.nan
    expected = np.zeros((400, 1)) + booster._baseline_prediction
    booster._predict_iterations(x, booster._predictors, expected, False, 1)  # scikit-learn's own tree walk
    walked = np.array([ensemble.walk.raw_one(row) for row in x.tolist()])
    np.testing.assert_allclose(walked, expected.ravel(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ensemble.per_tree_raw(x), expected.ravel(), rtol=0, atol=1e-12)
    assert np.unique(walked.round(9)).size > 100  # the inputs reach many different leaves


@pytest.mark.parametrize("rows", [1, 2, forest.WALK_MAX_ROWS, forest.WALK_MAX_ROWS + 1, 64])
def test_compiled_scorer_matches_the_estimator(model: Any, bundle_dir: Path, rows: int) -> None:
    contract = load_contract(bundle_dir / "contract.yaml")
    reference = EstimatorScorer(model, contract)
    compiled, note = compile_scorer(model, contract, reference)
    assert compiled.path == "compiled", note
    features = synthetic_features(contract, rows, seed=99)
    np.testing.assert_allclose(compiled.probabilities(features), reference.probabilities(features), rtol=0, atol=1e-12)


def test_another_estimator_shape_is_served_through_scikit_learn(bundle_dir: Path, tmp_path: Path) -> None:
    """The pipeline's logistic comparator is a different pipeline shape: no compiled path, same contract."""
    model_dir = tmp_path / "model"
    shutil.copytree(bundle_dir, model_dir)
    shutil.copy(model_dir / "comparator.joblib", model_dir / "model.joblib")
    served = load_served_model(model_dir)
    assert served.scorer.path == "scikit-learn"
    assert "served through scikit-learn" in served.scoring_note
    contract = load_contract(model_dir / "contract.yaml")
    records = [{**READMISSION_ROW, "age": age, "sex": sex} for age in (20, 55, 89) for sex in ("F", "M")]
    matrix, problems = served.schema.from_records(records)
    assert matrix is not None, problems
    comparator = joblib.load(model_dir / "model.joblib")
    expected = comparator.predict_proba(features(pd.DataFrame(records), contract))[:, 1]
    np.testing.assert_allclose(served.scorer.probabilities(matrix), expected, rtol=0, atol=1e-12)


def test_a_compiled_scorer_that_disagrees_is_not_served(
    model: Any, bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = forest.compile_walk

    def off_by_a_little(parts: Any) -> forest.TreeWalk:
        walk = real(parts)
        return dataclasses.replace(walk, baseline=walk.baseline + 1e-6)

    monkeypatch.setattr(forest, "compile_walk", off_by_a_little)
    contract = load_contract(bundle_dir / "contract.yaml")
    reference = EstimatorScorer(model, contract)
    chosen, note = compile_scorer(model, contract, reference)
    assert chosen is reference
    assert "compiled scores differ from scikit-learn" in note


def test_probe_rejects_transformers_that_mix_columns(bundle_dir: Path) -> None:
    contract = load_contract(bundle_dir / "contract.yaml")

    def mixes(features: np.ndarray) -> np.ndarray:
        numbers = np.nan_to_num(features)
        return numbers + numbers[:, ::-1]  # every output depends on two inputs

    with pytest.raises(forest.Unsupported):
        scoring._probe_inputs(mixes, contract)


def test_an_isotonic_calibration_is_served_through_scikit_learn_saying_why(model: Any, bundle_dir: Path) -> None:
    """Only a sigmoid is affine in the trees' raw score: the scorer and the explainer refuse anything else alike
    (pipelines.explain.member_parts), and the container serves the estimator itself."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    contract = load_contract(bundle_dir / "contract.yaml")
    reference = EstimatorScorer(model, contract)
    rows = reference.frame(synthetic_features(contract, 300, seed=7))
    labels = np.random.default_rng(7).integers(0, 2, len(rows))
    fitted = model.calibrated_classifiers_[0].estimator
    isotonic = CalibratedClassifierCV(FrozenEstimator(fitted), method="isotonic").fit(rows, labels)
    chosen, note = compile_scorer(isotonic, contract, EstimatorScorer(isotonic, contract))
    assert chosen.path != "compiled"
    assert "not one sigmoid calibrator" in note and "served through scikit-learn" in note
