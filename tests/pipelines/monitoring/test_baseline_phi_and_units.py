"""The drift baseline holds no individual's value (clipped outer edges, ages top-coded at 90), unit changes are
read from the distribution itself, and the headline tells the truth when only the scores moved."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.bundle import SAFE_HARBOR_AGE_CAP, compute_baseline
from pipelines.monitoring.drift.baseline import baseline_from_frame, parse_baseline
from pipelines.monitoring.drift.detect import detect_drift
from pipelines.monitoring.drift.narrative import feature_sentences, headline
from pipelines.monitoring.drift.units import detect_unit_change
from pipelines.steps.train import features
from tests.pipelines.monitoring.helpers import baseline, contract, window


def _training_frame() -> pd.DataFrame:
    from pipelines.data.synthetic import generate_readmission

    frame = features(generate_readmission(3000, seed=5), contract())
    frame.loc[0, "age"] = 101  # a real extract had one: identifying under Safe Harbor
    frame.loc[1, "creatinine"] = 17.93  # one patient's extreme lab value
    return frame


def test_baseline_keeps_no_individual_extreme_and_top_codes_age() -> None:
    frame = _training_frame()
    doc = compute_baseline(frame, contract(), np.linspace(0.01, 0.99, 500))
    age = doc["features"]["age"]
    assert 17.93 not in doc["features"]["creatinine"]["bin_edges"]
    assert all(v <= SAFE_HARBOR_AGE_CAP for v in age["bin_edges"]) and age["mean"] < SAFE_HARBOR_AGE_CAP
    assert max(age["bin_edges"]) <= SAFE_HARBOR_AGE_CAP and age["top_coded_at"] == SAFE_HARBOR_AGE_CAP
    for name, column in doc["features"].items():
        if column["kind"] != "numeric" or not column["bin_edges"]:
            continue
        present = frame[name].dropna().to_numpy(dtype=float)
        if name == "age":
            present = np.minimum(present, SAFE_HARBOR_AGE_CAP)
        lo, hi = column["bin_edges"][0], column["bin_edges"][-1]
        # At least 11 training values lie at or beyond each outer edge: no edge is one patient's value.
        assert (present <= lo).sum() >= 11 and (present >= hi).sum() >= 11, name
        assert abs(sum(column["proportions"]) - 1) < 1e-9 and 0 <= column["tail_share"] < 0.05
    score = doc["score"]
    assert score["bin_edges"][0] > 0.01 and score["bin_edges"][-1] < 0.99
    # The contract-free path shares the rule.
    free = baseline_from_frame(frame[["age", "creatinine"]], ["age", "creatinine"], {})
    assert max(free["features"]["age"]["bin_edges"]) <= SAFE_HARBOR_AGE_CAP


def test_a_stable_window_is_not_outside_the_clipped_range() -> None:
    result = detect_drift(baseline(), window(4000, seed=11))
    assert all(f.outside_training_range < 0.01 for f in result.features.values() if f.kind == "numeric")
    assert all(f.unit_change is None for f in result.features.values())


def test_a_whole_window_unit_switch_is_named_from_the_distribution() -> None:
    current = window(4000, seed=12)
    current["length_of_stay_days"] = current["length_of_stay_days"] * 10  # stays mostly inside 1-365: no range hit
    current["creatinine"] = current["creatinine"] * 88.4
    result = detect_drift(baseline(), current)
    los, creatinine = result.features["length_of_stay_days"], result.features["creatinine"]
    assert los.unit_change and los.unit_change.startswith("x10") and "unit" in los.reasons and los.flagged
    assert creatinine.unit_change == "x88.4 (creatinine mg/dL -> umol/L)"
    text = " ".join(feature_sentences(los, contract(), 30))
    assert "UNIT CHANGE" in text and "x10" in text
    assert result.features["sodium"].unit_change is None


@pytest.mark.parametrize(
    ("factor", "expected"),
    [(18.0, "x18 (glucose mmol/L -> mg/dL"), (1 / 18.0, "/18 (glucose mg/dL -> mmol/L"), (2.2046, "x2.2046")],
)
def test_known_conversion_factors(factor: float, expected: str) -> None:
    change = detect_unit_change(5.0, 1.2, 5.0 * factor * 1.01, 1.2 * factor * 0.9, present=500)
    assert change is not None and change.describe().startswith(expected)


def test_no_unit_change_for_ordinary_shifts() -> None:
    assert detect_unit_change(5.0, 1.2, 6.0, 1.3, present=500) is None  # 20% higher: a real shift, not units
    assert detect_unit_change(5.0, 1.2, 50.0, 1.2, present=500) is None  # mean only: not a multiplication
    assert detect_unit_change(5.0, 1.2, 50.0, 12.0, present=10) is None  # too few values to say


def test_headline_when_only_the_scores_moved() -> None:
    current = window(4000, seed=13)
    current["score"] = np.clip(current["score"] * 2.5, 0, 1)
    result = detect_drift(baseline(), current)
    assert result.verdict == "drift" and not result.drifted and result.score.flagged
    text = headline(result)
    assert "risk scores have shifted" in text and "none of the" in text and "Drift detected in 0" not in text


def test_old_baselines_without_tail_share_still_load() -> None:
    doc = json.loads(json.dumps(compute_baseline(_training_frame(), contract(), np.linspace(0.01, 0.99, 500))))
    for column in doc["features"].values():
        column.pop("tail_share", None)
    assert parse_baseline(doc).features["age"].tail_share == 0.0
