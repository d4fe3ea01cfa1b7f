"""Each step on small generated data: split, train, bundle, evaluate, fairness, decide, card."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.bundle import read_bundle
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.data.synthetic import generate_readmission
from pipelines.metrics import auc_with_ci, calibration, summarize, threshold_for_sensitivity
from pipelines.profiles import PROFILES
from pipelines.settings import GateSettings, TrainingSettings
from pipelines.steps import card as card_step
from pipelines.steps import decide as decide_step
from pipelines.steps import evaluate as evaluate_step
from pipelines.steps import fairness as fairness_step
from pipelines.steps import score as score_step
from pipelines.steps import split as split_step
from pipelines.steps import train as train_step
from pipelines.steps.validate import validate
from tests.pipelines.conftest import FIXED_CLOCK

ROWS = 4000


@dataclass
class Trained:
    contract: Any
    table: pd.DataFrame
    splits: split_step.Splits
    trained: train_step.Trained
    bundle_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    contract = load_contract(builtin_contract_path("readmission-risk"))
    raw = generate_readmission(ROWS, seed=21).astype(object)
    table = validate(raw.where(raw.notna(), None), contract, as_of=date(2025, 7, 1), key=b"k").table
    assert table is not None
    splits = split_step.split(table, contract, TrainingSettings())
    result = train_step.train(splits.train, splits.calibration, contract, TrainingSettings())
    path = tmp_path_factory.mktemp("bundle") / "model"
    train_step.save(
        result,
        splits.train,
        contract,
        TrainingSettings(),
        path,
        dataset_sha256="sha256:" + "ab" * 32,
        trained_at=FIXED_CLOCK,
    )
    return Trained(contract, table, splits, result, path)


def test_split_is_stratified_grouped_and_reproducible(trained: Trained) -> None:
    s, contract = trained.splits, trained.contract
    sizes = {name: s.summary[name]["rows"] for name in split_step.SPLITS}
    assert sum(sizes.values()) == ROWS
    assert abs(sizes["test"] / ROWS - 0.2) < 0.03 and abs(sizes["calibration"] / ROWS - 0.2) < 0.03
    rates = [s.summary[name]["prevalence"] for name in split_step.SPLITS]
    assert max(rates) - min(rates) < 0.03
    assert "mrn" not in s.train  # the token is not needed past the split

    # Patients do not cross splits: rebuild the row -> patient map from the table the split received.
    again = split_step.split(trained.table, contract, TrainingSettings())
    pd.testing.assert_frame_equal(again.test, s.test)
    other_seed = split_step.split(trained.table, contract, TrainingSettings(seed=1))
    assert not other_seed.test.equals(s.test)

    # Patients do not cross splits: carry a row id through, then look up each row's patient token.
    tagged = trained.table.assign(row_id=np.arange(len(trained.table)))
    parts = split_step.split(tagged, contract, TrainingSettings())
    patients = {name: set(tagged["mrn"].iloc[getattr(parts, name)["row_id"]]) for name in split_step.SPLITS}
    assert not patients["train"] & patients["test"] and not patients["calibration"] & patients["test"]
    assert not patients["train"] & patients["calibration"]
    assert tagged["mrn"].duplicated().any()  # there were repeat patients to keep together


def test_threshold_reaches_the_target_sensitivity_on_calibration_data(trained: Trained) -> None:
    contract = trained.contract
    y = trained.splits.calibration[contract.label.column].to_numpy()
    scores = trained.trained.candidate.predict_proba(train_step.features(trained.splits.calibration, contract))[:, 1]
    flagged = scores >= trained.trained.threshold
    assert flagged[y == 1].mean() >= 0.70
    assert (scores[y == 1] > trained.trained.threshold).mean() < 0.70  # the highest such threshold


def test_bundle_is_servable_and_documented(trained: Trained) -> None:
    bundle = read_bundle(trained.bundle_dir)
    assert sorted(p.name for p in trained.bundle_dir.iterdir()) == [
        "baseline.json",
        "comparator.joblib",
        "contract.yaml",
        "metadata.json",
        "model.joblib",
    ]
    meta = bundle.metadata
    assert meta["trained_at"] == FIXED_CLOCK.isoformat() and meta["model_version"].startswith("20250701.120000-abab")
    assert meta["feature_columns"] == trained.contract.feature_columns and meta["contract_version"] == "1.0.0"
    request = pd.DataFrame(
        [
            {
                "age": 70,
                "sex": "F",
                "payer": "Medicare",
                "admission_type": "Emergency",
                "length_of_stay_days": 6,
                "prior_admissions_12m": 2,
                "ed_visits_6m": 1,
                "charlson_index": 3,
                "num_medications": 9,
                "hba1c": None,
                "creatinine": 1.4,
                "hemoglobin": 10.5,
                "sodium": 136,
                "albumin": None,
                "discharge_disposition": "SNF",
            },
            {**dict.fromkeys(meta["feature_columns"]), "sex": "X", "payer": "unknown"},
        ]
    )
    scores = bundle.model.predict_proba(request)[:, 1]  # raw request values, unknown categories, all-missing row
    assert ((scores > 0) & (scores < 1)).all()

    baseline = bundle.baseline
    age = baseline["features"]["age"]
    assert age["kind"] == "numeric" and len(age["bin_edges"]) == len(age["proportions"]) + 1 <= 11
    assert math.isclose(sum(age["proportions"]), 1.0) and age["missing_fraction"] == 0.0
    hba1c = baseline["features"]["hba1c"]
    assert 0.4 < hba1c["missing_fraction"] < 0.8
    sex = baseline["features"]["sex"]
    assert sex["kind"] == "categorical" and set(sex["proportions"]) == {"F", "M"}
    assert len(baseline["score"]["bin_edges"]) == 11 and baseline["score"]["computed_on"] == "calibration split"
    discrete = baseline["features"]["prior_admissions_12m"]  # tied deciles merge into fewer bins
    assert len(discrete["proportions"]) < 10


def test_score_and_evaluate_match_sklearn_and_report_everything(trained: Trained) -> None:
    bundle = read_bundle(trained.bundle_dir)
    predictions = score_step.score(bundle, trained.splits.test)
    evaluation = evaluate_step.evaluate(predictions, bundle.metadata)
    y = trained.splits.test["readmitted_30d"].to_numpy()
    assert math.isclose(evaluation["candidate"]["auc"], roc_auc_score(y, predictions["score"]))
    assert evaluation["candidate"]["auc"] > 0.7
    for key in ("pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece", "auc_ci95"):
        assert key in evaluation["candidate"] and key in evaluation["comparator"]
    point = evaluation["candidate"]["at_threshold"]
    assert point["tp"] + point["fp"] + point["fn"] + point["tn"] == len(y)
    assert list(predictions.columns) == ["label", "score", "comparator_score", *trained.contract.sensitive_columns]
    quality = evaluate_step.model_quality(evaluation)["binary_classification_metrics"]
    assert quality["auc"]["value"] == evaluation["candidate"]["auc"]
    assert quality["confusion_matrix"]["1"]["1"] == point["tp"]


def test_metrics_against_known_answers() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 20_000)
    y = (rng.random(20_000) < p).astype(int)  # perfectly calibrated scores
    cal = calibration(y, p)
    assert abs(cal["calibration_slope"] - 1) < 0.1 and abs(cal["calibration_intercept"]) < 0.05 and cal["ece"] < 0.02
    over = calibration(y, np.clip(p * 1.5, 0, 0.999))  # over-predicted risk: intercept below 0
    assert over["calibration_intercept"] < -0.2
    auc, se, lo, hi = auc_with_ci(y, p)
    assert math.isclose(auc, roc_auc_score(y, p)) and 0 < se < 0.01 and lo < auc < hi
    assert auc_with_ci(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4]))[0] == 1.0
    assert threshold_for_sensitivity(np.array([1, 1, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1, 0.5]), 0.75) == 0.7
    summary = summarize(y, p, 0.5)
    assert summary["at_threshold"]["sensitivity"] > 0.5 and summary["n"] == 20_000


def _predictions(n_per_group: dict[str, int], auc_noise: dict[str, float], seed: int = 0) -> pd.DataFrame:
    """Predictions where a group's scores carry more or less noise (lower or higher AUC)."""
    rng = np.random.default_rng(seed)
    frames = []
    for group, n in n_per_group.items():
        y = (rng.random(n) < 0.2).astype(int)
        score = 1 / (1 + np.exp(-(2.5 * y - 1.5 + rng.normal(0, auc_noise[group], n))))
        frames.append(
            pd.DataFrame(
                {
                    "label": y,
                    "score": score,
                    "comparator_score": score,
                    "race_ethnicity": group,
                    "sex": rng.choice(["F", "M"], n),
                    "payer": "Medicare",
                    "age": 70,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_fairness_groups_bins_pooling_and_gaps() -> None:
    contract = load_contract(builtin_contract_path("readmission-risk"))
    predictions = _predictions(
        {"White": 2000, "Black": 800, "Asian": 300, "AIAN": 100, "NHPI": 100},
        {"White": 1.0, "Black": 3.0, "Asian": 1.0, "AIAN": 1.0, "NHPI": 1.0},
    )
    predictions.loc[:9, "age"] = 30
    report = fairness_step.assess_fairness(predictions, contract, 0.3, GateSettings())
    race = report["attributes"]["race_ethnicity"]
    assert set(race["groups"]) == {"White", "Black", "Asian", "AIAN/NHPI/Other (pooled)"}
    assert race["groups"]["AIAN/NHPI/Other (pooled)"]["n"] == 200
    assert race["gaps"]["auc"]["lowest_group"] == "Black" and race["gaps"]["auc"]["value"] > 0.15
    lo, hi = race["gaps"]["auc"]["ci95"]
    assert lo < race["gaps"]["auc"]["value"] < hi
    age = report["attributes"]["age"]
    assert set(age["groups"]) == {"18-44", "65-79"} and age["too_small"] == ["18-44"]
    assert report["attributes"]["payer"]["gaps"]["auc"] is None  # one group: nothing to compare


def test_decide_verdicts() -> None:
    gate = GateSettings()
    evaluation = {"candidate": {"auc": 0.78}}

    def fairness(gap: float, too_small: list[str] | None = None) -> dict[str, Any]:
        groups = {
            "A": {"auc": 0.8, "n": 500, "positives": 80, "status": "ok"},
            "B": {"auc": 0.8 - gap, "n": 500, "positives": 80, "status": "ok"},
            "C": {"auc": math.nan, "n": 20, "positives": 2, "status": "too_small"},
        }
        return {
            "attributes": {
                "race": {
                    "groups": groups,
                    "too_small": too_small or [],
                    "gaps": {
                        "auc": {
                            "value": gap,
                            "lowest_group": "B",
                            "highest_group": "A",
                            "ci95": [gap - 0.05, gap + 0.05],
                        }
                    },
                }
            }
        }

    passed = decide_step.decide(evaluation, fairness(0.05), gate)
    assert passed["verdict"] == decide_step.PENDING and passed["register"] and not passed["reasons"]
    low = decide_step.decide({"candidate": {"auc": 0.66}}, fairness(0.05), gate)
    assert low["verdict"] == "Rejected" and "below the minimum 0.70" in low["reasons"][0]
    gap = decide_step.decide(evaluation, fairness(0.12), gate)
    assert gap["verdict"] == "Rejected" and "race: AUC gap 0.120" in gap["reasons"][0] and not gap["register"]
    small = decide_step.decide(evaluation, fairness(0.05, ["C"]), gate)
    assert small["verdict"] == "Inconclusive" and "race=C" in small["reasons"][0] and "too small" in small["reasons"][0]
    both = decide_step.decide({"candidate": {"auc": 0.6}}, fairness(0.05, ["C"]), gate)
    assert both["verdict"] == "Rejected" and len(both["reasons"]) == 2  # a failure outranks "cannot judge"
    approved = decide_step.ApprovedReference("v3", 0.81, "mlflow", "this run's test split")
    worse = decide_step.decide(evaluation, fairness(0.05), gate, approved)
    assert worse["verdict"] == "Rejected" and "worse than the 0.02 tolerance" in worse["reasons"][0]
    within = decide_step.decide(evaluation, fairness(0.05), gate, decide_step.ApprovedReference("v3", 0.795, "m", "x"))
    assert within["verdict"] == decide_step.PENDING


def test_card_has_every_section_and_no_patient_level_data(trained: Trained) -> None:
    bundle = read_bundle(trained.bundle_dir)
    predictions = score_step.score(bundle, trained.splits.test)
    evaluation = evaluate_step.evaluate(predictions, bundle.metadata)
    lenient = GateSettings(
        min_auc=0.5,
        max_subgroup_auc_gap=0.9,
        max_subgroup_tpr_gap=1.0,
        max_subgroup_fpr_gap=1.0,
        max_comparator_shortfall=1.0,
        min_subgroup_size=1,
        min_subgroup_events=1,
    )
    fairness = fairness_step.assess_fairness(predictions, trained.contract, evaluation["operating_threshold"], lenient)
    decision = decide_step.decide(evaluation, fairness, lenient, relaxed_by="test-reviewer")
    report = {"status": "passed", "rows": ROWS, "phi_removed": {"mrn": "tokenize"}, "missing_fraction": {"hba1c": 0.6}}
    card = card_step.build_card(
        metadata=bundle.metadata,
        evaluation=evaluation,
        fairness=fairness,
        decision=decision,
        contract_report=report,
        split_summary=trained.splits.summary,
        profile=PROFILES["readmission-risk"],
        data_source="synthetic generator",
    )
    markdown = card_step.card_markdown(card)
    for heading in ("Intended use", "Limitations", "Training data", "Metrics", "Fairness", "Decision"):
        assert f"## {heading}" in markdown
    assert "SYNTHETIC" in markdown and "sha256:abab" in markdown and "v1.0.0" in markdown
    assert card["approval_status"] == decide_step.PENDING
    metadata = card_step.registry_metadata(card)
    assert set(metadata) >= {"auc", "brier", "max_subgroup_auc_gap", "operating_threshold"}
    assert all(isinstance(v, str) for v in metadata.values())
    content = card_step.sagemaker_card_content(card)
    assert json.loads(json.dumps(content))["intended_uses"]["risk_rating"] == "High"
