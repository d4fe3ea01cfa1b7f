"""Every statistic the drift report publishes in its methods section, as `detect_drift` computes it on the
production path, against scipy on the same raw data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from pipelines.monitoring.drift.baseline import baseline_from_frame, parse_baseline
from pipelines.monitoring.drift.detect import DriftResult, DriftSettings, detect_drift
from pipelines.monitoring.drift.report import methods, render_html, write_json

LEVELS = ["Medicare", "Commercial", "Medicaid"]
SETTINGS = DriftSettings(epsilon=2e-4, js_base=np.e)  # not the defaults: the report must show these values


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"lab": rng.gamma(2.0, 3.0, 8000), "payer": rng.choice(LEVELS, 8000, p=[0.5, 0.3, 0.2])})
    lab = rng.gamma(2.0, 3.3, 5000)
    lab[:40] = -1.0  # below the training minimum: counted in the first bin, once
    payer = rng.choice([*LEVELS, "Tricare"], 5000, p=[0.4, 0.3, 0.2, 0.1])
    return reference, pd.DataFrame({"lab": lab, "payer": payer})


def _result() -> tuple[DriftResult, pd.DataFrame, pd.DataFrame, np.ndarray]:
    reference, current = _data()
    baseline = parse_baseline(baseline_from_frame(reference, ["lab"], {"payer": LEVELS}))
    edges = baseline.features["lab"].edges  # type: ignore[union-attr]
    return detect_drift(baseline, current, SETTINGS), reference, current, edges


def _lab_bins(reference: pd.DataFrame, current: pd.DataFrame, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin counts by numpy's own histogram on clipped values: the rule the methods section states."""
    ref, _ = np.histogram(np.clip(reference["lab"], edges[0], edges[-1]), bins=edges)
    cur, _ = np.histogram(np.clip(current["lab"], edges[0], edges[-1]), bins=edges)
    return ref.astype(float), cur.astype(float)


def _payer_bins(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([(reference["payer"] == lv).sum() for lv in LEVELS] + [0], dtype=float)
    cur = np.array(
        [(current["payer"] == lv).sum() for lv in LEVELS] + [(~current["payer"].isin(LEVELS)).sum()], dtype=float
    )
    return ref, cur


def _smoothed(counts: np.ndarray) -> np.ndarray:
    shares = counts / counts.sum()
    return (shares + SETTINGS.epsilon) / (1 + counts.size * SETTINGS.epsilon)


def test_psi_is_scipy_symmetric_entropy_of_the_smoothed_bins() -> None:
    result, reference, current, edges = _result()
    for name, (ref, cur) in {
        "lab": _lab_bins(reference, current, edges),
        "payer": _payer_bins(reference, current),
    }.items():
        p, q = _smoothed(ref), _smoothed(cur)
        assert result.features[name].psi == pytest.approx(sps.entropy(q, p) + sps.entropy(p, q), rel=1e-9)


def test_js_is_scipy_jensenshannon_in_the_configured_base() -> None:
    result, reference, current, edges = _result()
    for name, (ref, cur) in {
        "lab": _lab_bins(reference, current, edges),
        "payer": _payer_bins(reference, current),
    }.items():
        expected = jensenshannon(ref / ref.sum(), cur / cur.sum(), base=SETTINGS.js_base)
        assert result.features[name].js == pytest.approx(expected, rel=1e-9)


def test_ks_is_a_lower_bound_of_scipy_ks_2samp_within_the_largest_bin() -> None:
    result, reference, current, edges = _result()
    lab = result.features["lab"]
    exact = sps.ks_2samp(reference["lab"], current["lab"])
    ref, cur = _lab_bins(reference, current, edges)
    largest_bin = max((ref / ref.sum()).max(), (cur / cur.sum()).max())
    assert lab.ks <= exact.statistic + 1e-12
    assert exact.statistic - lab.ks <= largest_bin
    effective = round(ref.sum() * cur.sum() / (ref.sum() + cur.sum()))
    assert lab.ks_pvalue == pytest.approx(sps.kstwo.sf(lab.ks, effective), rel=1e-9)


def test_total_variation_is_half_the_l1_distance() -> None:
    result, reference, current, _ = _result()
    ref, cur = _payer_bins(reference, current)
    assert result.features["payer"].tv == pytest.approx(0.5 * np.abs(ref / ref.sum() - cur / cur.sum()).sum())


def test_chi_square_is_scipy_chi2_contingency_without_correction() -> None:
    result, reference, current, edges = _result()
    for name, (ref, cur) in {
        "lab": _lab_bins(reference, current, edges),
        "payer": _payer_bins(reference, current),
    }.items():
        table = np.vstack([ref, cur])[:, (ref + cur) > 0]
        assert result.features[name].pvalue == pytest.approx(
            sps.chi2_contingency(table, correction=False).pvalue, rel=1e-6, abs=1e-300
        )


def test_the_report_publishes_the_definitions_with_this_runs_settings(tmp_path) -> None:
    result, *_ = _result()
    page = render_html(result, charts=False)
    assert "<h2 id=methods>Methods</h2>" in page
    text = methods(SETTINGS)
    assert set(text) >= {"bins", "psi", "js", "ks", "tv", "chi_square", "decision", "missingness"}
    assert "0.0002" in text["psi"] and "natural logarithm" in text["psi"]
    assert f"base {np.e:g}" in text["js"]
    assert "correction=False" in text["chi_square"]
    assert "at most 10 bins" in text["bins"]
    doc = json.loads(write_json(result, tmp_path / "drift.json").read_text())
    assert doc["methods"] == text
