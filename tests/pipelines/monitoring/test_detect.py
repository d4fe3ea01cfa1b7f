"""Injected shifts are found, clean windows are not flagged, and small windows get no verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.data.synthetic import Injections
from pipelines.monitoring.drift.detect import DriftSettings, compare, detect_drift
from pipelines.monitoring.drift.summary import Summary, merge, summarize
from tests.pipelines.monitoring.helpers import baseline, window

WINDOW = 4000


def _flagged(frame: pd.DataFrame) -> tuple[str, list[str], dict]:
    result = detect_drift(baseline(), frame)
    return result.verdict, result.drifted, result.features


@pytest.mark.parametrize(
    ("injection", "feature", "reasons"),
    [
        (Injections(unit_change="creatinine"), "creatinine", {"distribution", "contract"}),
        (Injections(unit_change="hba1c"), "hba1c", {"distribution", "contract"}),
        (Injections(schema_break="retype"), "prior_admissions_12m", {"contract"}),
        (Injections(schema_break="rename"), "length_of_stay_days", {"missingness"}),
    ],
)
def test_generator_injections_are_detected_and_nothing_else(injection: Injections, feature: str, reasons: set) -> None:
    verdict, drifted, features = _flagged(window(WINDOW, seed=3, injections=injection))
    assert verdict == "drift"
    assert drifted == [feature]
    assert reasons <= set(features[feature].reasons)


def test_unit_change_is_explained_by_the_contracts_alternate_unit() -> None:
    result = detect_drift(baseline(), window(WINDOW, seed=4, injections=Injections(unit_change="creatinine")))
    creatinine = result.features["creatinine"]
    assert creatinine.unit_hint == "umol/L"
    assert creatinine.violation_rate == pytest.approx(0.3, abs=0.02)  # the generator switches the last 30%
    assert creatinine.outside_training_range > 0.25


def _shifted(column: str, how: str) -> pd.DataFrame:
    frame = window(WINDOW, seed=5)
    base = baseline().features[column]
    if how == "mean":
        frame[column] = frame[column] + 0.2 * base.sd
    elif how == "scale":
        frame[column] = base.mean + 1.3 * (frame[column] - base.mean)
    frame[column] = frame[column].round(1)  # the lab still reports at its resolution (0.1 g/dL)
    return frame


@pytest.mark.parametrize(("column", "how"), [("hemoglobin", "mean"), ("hemoglobin", "scale"), ("albumin", "mean")])
def test_small_location_and_scale_shifts_are_detected(column: str, how: str) -> None:
    _, drifted, features = _flagged(_shifted(column, how))
    assert drifted == [column]
    assert features[column].psi < 0.2  # PSI alone would have missed it; the KS shift does not
    assert features[column].shift >= DriftSettings().shift_drift


def test_category_frequency_change_is_detected() -> None:
    frame = window(WINDOW, seed=6)
    rng = np.random.default_rng(6)
    medicare = (frame["payer"] == "Medicare").to_numpy() & (rng.random(len(frame)) < 0.4)
    frame.loc[medicare, "payer"] = "Medicaid"
    _, drifted, features = _flagged(frame)
    assert drifted == ["payer"]
    assert features["payer"].tv > 0.1


def test_clean_windows_raise_few_false_flags_over_many_seeds() -> None:
    """Bound: at most 2 flagged features in total over 20 clean windows (18 judged tests each, features and
    score). Why: flags need a chi-square rejection at alpha = 0.01 Bonferroni-corrected over the family, so each
    window has at most a 1% chance of any false flag (on top, the effect must reach PSI 0.2 or a 5% shift).
    Over 20 windows the expected count is <= 0.2; P(3 or more) < 0.2% even before the effect-size filter."""
    flagged = []
    for seed in range(20):
        result = detect_drift(baseline(), window(3000, seed=100 + seed))
        flagged += result.drifted + (["score"] if result.score and result.score.status == "drift" else [])
        assert result.verdict in ("no-drift", "drift")
    assert len(flagged) <= 2, flagged


def test_too_few_rows_give_no_verdict() -> None:
    result = detect_drift(baseline(), window(150, seed=8, injections=Injections(unit_change="creatinine")))
    assert result.verdict == "insufficient-data"
    small = detect_drift(baseline(), window(300, seed=8), DriftSettings(min_rows=200, min_feature_rows=150))
    assert small.verdict == "no-drift"
    assert small.features["hba1c"].status == "insufficient-data"  # hba1c is mostly unmeasured: too few values
    assert small.features["age"].status != "insufficient-data"


def test_unseen_levels_are_flagged_and_only_frequent_safe_ones_are_named() -> None:
    frame = window(WINDOW, seed=9)
    frame.loc[frame.index[:600], "payer"] = "Tricare"
    frame.loc[frame.index[600:603], "payer"] = "Rare plan"  # below the small-cell threshold
    frame.loc[frame.index[603:640], "payer"] = "Jane Doe MRN 12345678"  # an identifier in the wrong field
    result = detect_drift(baseline(), frame)
    payer = result.features["payer"]
    assert payer.status == "drift" and {"distribution", "contract"} <= set(payer.reasons)
    assert "Rare plan" not in payer.unseen_values
    assert payer.violations["unseen_category"] == 640
    from pipelines.monitoring.drift.narrative import feature_sentences

    text = " ".join(feature_sentences(payer, baseline().contract, 100))
    assert "Tricare" in text and "12345678" not in text


def test_score_drift_follows_input_drift() -> None:
    frame = window(WINDOW, seed=10)
    frame["score"] = np.clip(frame["score"] * 1.6, 0, 1)
    result = detect_drift(baseline(), frame)
    assert result.score is not None and result.score.status == "drift"
    assert result.verdict == "drift" and result.drifted == []


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 799), min_size=1, max_size=4, unique=True))
def test_summaries_of_parts_merge_to_the_summary_of_the_whole(cuts: list[int]) -> None:
    frame = window(800, seed=11, injections=Injections(unit_change="creatinine"))
    bounds = [0, *sorted(cuts), len(frame)]
    parts = [summarize(frame.iloc[a:b], baseline()) for a, b in itertools.pairwise(bounds)]
    merged, whole = merge(parts), summarize(frame, baseline())
    merged = Summary.from_dict(merged.to_dict())  # and survives the partial-file round trip
    assert merged.rows == whole.rows
    for name, counts in whole.features.items():
        other = merged.features[name]
        assert other.missing == counts.missing and other.present == counts.present
        if counts.kind == "numeric":
            assert other.bins.tolist() == counts.bins.tolist() and other.out_of_range == counts.out_of_range
            assert other.moments.mean == pytest.approx(counts.moments.mean, rel=1e-9, abs=1e-12)
            assert other.moments.m2 == pytest.approx(counts.moments.m2, rel=1e-9, abs=1e-9)
        else:
            assert {k: v for k, v in other.levels.items() if v} == {k: v for k, v in counts.levels.items() if v}
    a, b = compare(baseline(), merged), compare(baseline(), whole)
    assert a.drifted == b.drifted and a.features["creatinine"].psi == pytest.approx(b.features["creatinine"].psi)
