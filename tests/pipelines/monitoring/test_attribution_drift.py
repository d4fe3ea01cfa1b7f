"""Attribution drift next to feature drift: the baseline's mean |contribution| from the train split against the
window's, from the bundle's own model; the threshold on both sides; shards merge exactly; no model, no guess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.monitoring.drift.attribution import AttributionSums, compare_attributions
from pipelines.monitoring.drift.baseline import Baseline, load_baseline
from pipelines.monitoring.drift.detect import DriftSettings, compare, detect_drift
from pipelines.monitoring.drift.metrics import metric_data
from pipelines.monitoring.drift.narrative import display_name, headline
from pipelines.monitoring.drift.report import render_html, write_json
from pipelines.monitoring.drift.summary import Summary, merge, summarize
from tests.pipelines.bundles import train_pipeline_bundle
from tests.pipelines.monitoring.helpers import window


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("attribution")
    return train_pipeline_bundle(work / "model", work, seed=4).directory


@pytest.fixture(scope="module")
def baseline(bundle_dir: Path) -> Baseline:
    loaded = load_baseline(bundle_dir)
    assert loaded.explainer is not None and loaded.attributions is not None, loaded.attribution_note
    return loaded


def _window(rows: int, seed: int) -> pd.DataFrame:
    return window(rows, seed).drop(columns=["score"])  # the toy score is not this model's: features only


def test_a_clean_window_is_stable_and_a_lost_top_feature_fires(baseline: Baseline, tmp_path: Path) -> None:
    clean = detect_drift(baseline, _window(1500, seed=7))
    assert clean.attributions is not None and clean.attributions.status == "stable", clean.attributions
    assert clean.verdict == "no-drift" and clean.attributions.rows == 1500
    top = max(baseline.attributions or {}, key=lambda name: (baseline.attributions or {})[name])
    broken = _window(1500, seed=7)
    broken[top] = np.nan  # the feed for the model's most used input stops: the model can no longer lean on it
    result = detect_drift(baseline, broken)
    assert result.verdict == "drift" and result.attribution_drifted == [top]
    moved = result.attributions.features[top]  # type: ignore[union-attr]
    assert moved.current < moved.baseline / 1.5 and moved.change <= -0.05
    assert "attribution drift" in headline(result)
    page = render_html(result)
    assert "id=attributions" in page and page.index(display_name(top)) > 0 and "changed" in page
    data = metric_data(result)
    flagged = [d for d in data if d["MetricName"] == "AttributionDrift" and d["Value"] == 1.0]
    assert [d["Dimensions"][-1]["Value"] for d in flagged] == [top]
    assert [d["Value"] for d in data if d["MetricName"] == "AttributionDriftedFeatures"] == [1]
    assert not [d for d in metric_data(clean) if d["MetricName"] == "AttributionDrift" and d["Value"]]
    doc = json.loads(write_json(result, tmp_path / "drift.json").read_text())
    assert (
        doc["attribution_drift"]["status"] == "drift" and doc["attribution_drift"]["features"][top]["status"] == "drift"
    )


@pytest.mark.parametrize(
    ("base", "now", "expected"),
    [
        (0.10, 0.151, "drift"),  # +0.051 and x1.51: both limits passed
        (0.10, 0.049, "drift"),  # -0.051 and /2
        (0.10, 0.149, "stable"),  # +0.049 and x1.49: just under both
        (0.06, 0.095, "warn"),  # x1.58 with +0.035 (over half the shift): a warning, not drift
        (0.30, 0.36, "warn"),  # +0.06 but only x1.2: big, not proportionate
        (0.01, 0.03, "stable"),  # x3 of almost nothing
        (0.20, 0.22, "stable"),
    ],
)
def test_the_threshold_on_both_sides(base: float, now: float, expected: str) -> None:
    settings = DriftSettings()
    current = AttributionSums(1000, {"x": now * 1000})
    result = compare_attributions(
        {"x": base}, current, settings.attribution_shift, settings.attribution_ratio, 100, "calibrated log-odds"
    )
    assert result.features["x"].status == expected
    assert result.status == expected


def test_too_few_rows_gives_no_attribution_verdict() -> None:
    result = compare_attributions({"x": 0.1}, AttributionSums(99, {"x": 50.0}), 0.05, 1.5, 100, "u")
    assert result.status == "insufficient-data" and not result.features


def test_shards_merge_to_the_single_run(baseline: Baseline) -> None:
    frame = _window(600, seed=11)
    whole = summarize(frame, baseline)
    halves = [summarize(frame.iloc[:250], baseline), summarize(frame.iloc[250:], baseline)]
    merged = merge([Summary.from_dict(json.loads(json.dumps(h.to_dict()))) for h in halves])
    assert whole.attributions is not None and merged.attributions is not None
    assert merged.attributions.rows == whole.attributions.rows == 600
    for name, total in whole.attributions.sums.items():
        assert merged.attributions.sums[name] == pytest.approx(total, rel=1e-12)
    a, b = compare(baseline, whole).attributions, compare(baseline, merged).attributions
    assert a is not None and b is not None and a.status == b.status
    for name, f in a.features.items():
        assert (b.features[name].status, b.features[name].current) == (f.status, pytest.approx(f.current, rel=1e-12))


def test_without_the_model_beside_the_baseline_it_says_so(bundle_dir: Path, tmp_path: Path) -> None:
    for name in ("baseline.json", "metadata.json", "contract.yaml"):
        shutil.copy(bundle_dir / name, tmp_path / name)
    loaded = load_baseline(tmp_path)
    assert loaded.explainer is None and "no model.joblib" in loaded.attribution_note
    result = detect_drift(loaded, _window(300, seed=3))
    assert result.attributions is None and "no model.joblib" in result.attribution_note
    assert "Not computed: no model.joblib" in render_html(result)
