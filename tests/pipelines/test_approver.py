"""What the clinical approver reads: error-rate gaps judged with their CI, rows that name the limit they break,
the comparator honestly compared, relaxed limits flagged, the model named by its contract, and the HTML card."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.errors import InputError
from pipelines.local import resolve_model_name
from pipelines.settings import GateSettings, describe_relaxations, relaxed_limits
from pipelines.steps import card as card_step
from pipelines.steps import decide as decide_step
from pipelines.steps import evaluate as evaluate_step
from pipelines.steps import fairness as fairness_step
from pipelines.steps.card_html import card_html

CONTRACT = load_contract(builtin_contract_path("readmission-risk"))


def _age_predictions(sensitivity: dict[int, float], n: int = 2000, seed: int = 3) -> pd.DataFrame:
    """Same AUC in every age band, but the threshold (0.5) catches a different share of each band's events."""
    rng = np.random.default_rng(seed)
    frames = []
    for age, tpr in sensitivity.items():
        y = (rng.random(n) < 0.25).astype(int)
        flagged = np.where(y == 1, rng.random(n) < tpr, rng.random(n) < 0.2)
        score = np.where(flagged, 0.5 + 0.4 * rng.random(n), 0.45 * rng.random(n))
        frames.append(
            pd.DataFrame(
                {
                    "label": y,
                    "score": score,
                    "comparator_score": score,
                    "age": age,
                    "race_ethnicity": "White",
                    "sex": rng.choice(["F", "M"], n),
                    "payer": "Medicare",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _evaluation(auc: float = 0.8, comparator: float = 0.78) -> dict[str, Any]:
    return {"candidate": {"auc": auc}, "comparator": {"auc": comparator, "estimator": "logistic regression"}}


def test_a_sensitivity_gap_rejects_and_the_rows_name_the_limit() -> None:
    predictions = _age_predictions({30: 0.32, 70: 0.9})
    fairness = fairness_step.assess_fairness(predictions, CONTRACT, 0.5, GateSettings())
    gap = fairness["attributes"]["age"]["gaps"]["tpr"]
    assert gap["value"] > 0.5 and gap["ci95"][0] <= gap["value"] <= gap["ci95"][1]
    decision = decide_step.decide(_evaluation(), fairness, GateSettings())
    assert decision["verdict"] == decide_step.REJECTED
    assert any("sensitivity (TPR) gap" in r and "max_subgroup_tpr_gap" in r for r in decision["reasons"])
    rows = {r["group"]: r["verdict"] for r in card_step._fairness_rows(fairness, decision["checks"])}
    assert all("breaks TPR gap limit 0.10" in rows[g] for g in ("18-44", "65-79"))
    assert all(v != "ok" for v in rows.values())


def test_a_gap_whose_ci_crosses_the_limit_needs_a_named_sign_off() -> None:
    fairness = {
        "attributes": {
            "race": {
                "groups": {
                    "A": {"auc": 0.80, "n": 400, "positives": 60, "status": "ok"},
                    "B": {"auc": 0.72, "n": 400, "positives": 60, "status": "ok"},
                },
                "too_small": [],
                "gaps": {"auc": {"value": 0.08, "lowest_group": "B", "highest_group": "A", "ci95": [0.01, 0.135]}},
            }
        }
    }
    decision = decide_step.decide(_evaluation(), fairness, GateSettings())
    check = next(c for c in decision["checks"] if c["name"] == "subgroup_auc_gap:race")
    assert check["outcome"] == decide_step.NEEDS_SIGNOFF and check["passed"] is None
    assert decision["verdict"] == decide_step.PENDING  # approval is human anyway; the sign-off is now required
    assert decision["signoff_required"] and "sign-off" in decision["summary"]
    rows = card_step._fairness_rows(fairness, decision["checks"])
    assert all(r["verdict"].startswith("sign-off: AUC gap limit 0.10 inside CI") for r in rows)
    clear = decide_step.decide(_evaluation(), _with_ci(fairness, [0.01, 0.095]), GateSettings())
    assert not clear["signoff_required"] and clear["checks"][-1]["outcome"] == decide_step.PASS


def _with_ci(fairness: dict[str, Any], ci: list[float]) -> dict[str, Any]:
    fairness["attributes"]["race"]["gaps"]["auc"]["ci95"] = ci
    return fairness


def test_bootstrap_intervals_are_reproducible_and_widen_with_fewer_patients() -> None:
    big = fairness_step.assess_fairness(_age_predictions({30: 0.7, 70: 0.8}, n=4000), CONTRACT, 0.5, GateSettings())
    again = fairness_step.assess_fairness(_age_predictions({30: 0.7, 70: 0.8}, n=4000), CONTRACT, 0.5, GateSettings())
    small = fairness_step.assess_fairness(_age_predictions({30: 0.7, 70: 0.8}, n=500), CONTRACT, 0.5, GateSettings())
    width = {k: r["attributes"]["age"]["gaps"]["tpr"]["ci95"] for k, r in (("big", big), ("small", small))}
    assert big["attributes"]["age"]["gaps"]["tpr"] == again["attributes"]["age"]["gaps"]["tpr"]
    assert width["small"][1] - width["small"][0] > width["big"][1] - width["big"][0]
    assert "bootstrap" in big["attributes"]["age"]["gaps"]["fpr"]["ci_method"]


def test_a_candidate_worse_than_its_comparator_is_refused_and_worded_honestly() -> None:
    fairness: dict[str, Any] = {"attributes": {}}
    worse = decide_step.decide(_evaluation(0.737, 0.812), fairness, GateSettings())
    assert worse["verdict"] == decide_step.REJECTED and not worse["register"]
    assert "0.075 LOWER than the logistic regression comparator" in worse["reasons"][0]
    assert "refusing to register the worse model" in worse["reasons"][0]
    better = decide_step.decide(_evaluation(0.80, 0.79), fairness, GateSettings())
    assert better["verdict"] == decide_step.PENDING
    note = card_step._comparator_note({"auc_gain_over_comparator": -0.075, "comparator": {"estimator": "logistic"}})
    assert "WORSE" in note[0] and "0.075 lower" in note[0] and "-0.075" not in note[0]
    assert "only 0.004" in card_step._comparator_note({"auc_gain_over_comparator": 0.004})[0]
    assert card_step._comparator_note({"auc_gain_over_comparator": 0.05}) == []


def test_relaxed_limits_name_the_default_and_who() -> None:
    assert relaxed_limits(GateSettings()) == []
    assert relaxed_limits(GateSettings(min_auc=0.8, max_subgroup_tpr_gap=0.05)) == []  # stricter is not relaxed
    relaxed = relaxed_limits(GateSettings(min_auc=0.6, max_subgroup_fpr_gap=0.2))
    assert [r["limit"] for r in relaxed] == ["min_auc", "max_subgroup_fpr_gap"]
    line = describe_relaxations(relaxed, "dr.lee")
    assert "min_auc 0.6 (default 0.7)" in line and "relaxed by dr.lee" in line
    decision = decide_step.decide(_evaluation(0.65, 0.6), {"attributes": {}}, GateSettings(min_auc=0.6), None, "dr.lee")
    assert decision["relaxed_by"] == "dr.lee" and decision["relaxed_limits"][0]["limit"] == "min_auc"


def test_model_name_comes_from_the_contract(tmp_path: Path) -> None:
    path = builtin_contract_path("readmission-risk")
    assert resolve_model_name(None, None) == "readmission-risk"
    assert resolve_model_name(None, path) == CONTRACT.name
    assert resolve_model_name(CONTRACT.name, path) == CONTRACT.name
    with pytest.raises(InputError, match="does not match the contract's name"):
        resolve_model_name("sepsis-risk", path)


def test_curves_are_aggregates_for_the_charts() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.2).astype(int)
    score = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.15, 5000), 0, 1)
    curves = evaluate_step.curves(y, score)
    roc = np.array(curves["roc"])
    assert roc[0].tolist() == [0.0, 0.0] and roc[-1].tolist() == [1.0, 1.0]
    assert (np.diff(roc[:, 0]) >= 0).all() and len(roc) <= evaluate_step.CURVE_POINTS + 3
    assert sum(b["n"] for b in curves["calibration"]) == 5000
    assert min(b["n"] for b in curves["calibration"]) >= 400  # every point stands for many patients


def minimal_card(verdict: str = "Rejected") -> dict[str, Any]:
    """A small but complete card dict (used by the HTML and screenshot tests)."""
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.2).astype(int)
    score = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.15, 3000), 0.001, 0.999)
    predictions = _age_predictions({30: 0.32, 70: 0.9})
    fairness = fairness_step.assess_fairness(predictions, CONTRACT, 0.5, GateSettings())
    gate = GateSettings(min_auc=0.6)
    decision = decide_step.decide(_evaluation(0.74, 0.81), fairness, gate, None, "dr.lee")
    point = {"sensitivity": 0.7, "specificity": 0.8, "ppv": 0.4, "npv": 0.9, "alert_rate": 0.3}
    point |= {"tp": 1, "fp": 2, "fn": 3, "tn": 4, "threshold": 0.5}
    headline = dict.fromkeys(card_step._HEADLINE, 0.1) | {"auc": 0.74, "auc_ci95": [0.72, 0.76]}
    evaluation = {
        "evaluated_on": "test split",
        "candidate": headline | {"at_threshold": point},
        "comparator": headline | {"auc": 0.81},
        "auc_gain_over_comparator": -0.07,
        "curves": {"candidate": evaluate_step.curves(y, score), "comparator": evaluate_step.curves(y, score * 0.9)},
    }
    metadata = {
        "model_name": "readmission-risk",
        "model_version": "20250101.000000-abababab",
        "estimator": "HistGradientBoostingClassifier",
        "trained_at": "2025-01-01T00:00:00+00:00",
        "operating_threshold": 0.5,
        "target_sensitivity": 0.7,
        "sklearn_version": "1.x",
        "dataset_sha256": "sha256:" + "ab" * 32,
        "contract_name": "readmission-risk",
        "contract_version": "1.0.0",
        "contract_fingerprint": "f",
        "feature_columns": ["age", "sex"],
    }
    from pipelines.profiles import PROFILES

    return card_step.build_card(
        metadata=metadata,
        evaluation=evaluation,
        fairness=fairness,
        decision=decision,
        contract_report={"status": "passed", "rows": 4000, "phi_removed": {"mrn": "tokenize"}, "missing_fraction": {}},
        split_summary={"test": {"rows": 4000, "positives": 1000}},
        profile=PROFILES["readmission-risk"],
        data_source="synthetic generator",
    )


def test_html_card_has_the_decision_charts_data_and_limitations(tmp_path: Path) -> None:
    card = minimal_card()
    page = card_html(card)
    for chart in ("chart-roc", "chart-calibration", "chart-tpr", "chart-fpr", "chart-calgroup"):
        assert f'id="{chart}"' in page
    assert page.count("<svg") == 5 and "<script" not in page
    assert "Rejected" in page and "Gate limits relaxed from the platform default" in page and "dr.lee" in page
    assert "breaks TPR gap limit" in page and "WORSE than the logistic regression comparator" in page
    assert "Limitations" in page and "Model and data" in page
    markdown = card_step.card_markdown(card)
    assert "GATE LIMITS RELAXED" in markdown and "min_auc 0.6 (default 0.7)" in markdown
    metadata = card_step.registry_metadata(card)
    assert metadata["gate_relaxed"] == "min_auc=0.6 default=0.7 relaxed by dr.lee"
    assert metadata["signoff_required"]
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataMap").value
    for value in metadata.values():  # every value is a valid SageMaker CustomerMetadataProperties value
        assert 1 <= len(value) <= shape.metadata["max"] and re.fullmatch(r"[\w\s.:/=+\-@]*", value), value
    card_step.write_card(card, tmp_path)
    assert (tmp_path / "model-card.html").read_text() == page and (tmp_path / "model-card.md").is_file()


def test_an_interrupted_run_is_recorded_as_killed_with_no_decision(
    out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import tracking
    from pipelines.local import run_local
    from tests.pipelines.conftest import fixed_clock, small_data_settings

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fairness_step, "assess_fairness", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_local(out_dir=out_dir, rows=2000, clock=fixed_clock, settings=small_data_settings())
    [run_dir] = (out_dir / "pipeline" / "readmission-risk").iterdir()
    assert (run_dir / "model" / "model.joblib").is_file() and not (run_dir / "decision").exists()
    uri = tracking.default_tracking_uri(out_dir)
    [run] = tracking.client(uri).search_runs([tracking.experiment_id(uri, "readmission-risk")])
    assert run.info.status == "KILLED" and run.data.tags["verdict"] == "Interrupted"
