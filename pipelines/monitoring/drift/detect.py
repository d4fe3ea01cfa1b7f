"""Compare a window's counts with the training baseline and decide, feature by feature, what changed.

The decision rule, and why it is not "PSI >= 0.2" alone:
1. Enough data first. Below `min_rows` rows the run says `insufficient-data` and gives no verdict; a feature
   with fewer than `min_feature_rows` present values is not judged on its distribution.
2. A change must be real: the chi-square homogeneity test on the binned counts must reject at `alpha`,
   Bonferroni-corrected over every judged feature and the score, so a clean window of m features raises a
   false distribution flag with probability <= alpha (the family-wise error rate).
3. And it must be big enough to matter: PSI >= `psi_drift` (the industry cut-off; catches shape and tail
   changes such as a unit switch), or a `shift` >= `shift_drift`. `shift` is the largest share of patients that
   moved across any cut point: the KS statistic for numbers, total variation for categories. PSI is quadratic
   in small shifts: a 0.2 SD mean shift moves 8% of patients across the median yet has PSI ~ 0.04, and a 30%
   wider spread has PSI ~ 0.12; `shift` sees both. Between the warn and drift levels a feature is `warn`.
Separately, missingness (absolute change >= `missing_shift`, significant) and contract violations (rate above
`max_violation_rate`; training data had none, so no test is needed) flag a feature whatever its distribution,
and so does a unit change read from the distribution (mean and spread both moved by a known conversion factor,
`units.py`), which needs no declared range. Next to the inputs, attribution drift (`attribution.py`): how much
the model leans on each feature (mean |exact contribution|) against the train split; it also flags the window.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pipelines.explain import UNITS
from pipelines.monitoring.drift.attribution import AttributionDrift, compare_attributions
from pipelines.monitoring.drift.baseline import Baseline, CategoricalBaseline, FeatureBaseline, NumericBaseline
from pipelines.monitoring.drift.stats import (
    chi2_homogeneity,
    js_distance,
    ks_binned,
    ks_pvalue,
    normalise,
    psi,
    total_variation,
    two_proportion_pvalue,
)
from pipelines.monitoring.drift.summary import OTHER_UNSEEN, CategoricalCounts, NumericCounts, Summary, summarize
from pipelines.monitoring.drift.units import detect_unit_change

Verdict = Literal["drift", "no-drift", "insufficient-data"]
Status = Literal["drift", "warn", "stable", "insufficient-data"]
UNSEEN = "(unseen in training)"


class DriftSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: int = Field(default=200, ge=1, description="rows a window needs before any verdict")
    min_feature_rows: int = Field(default=100, ge=1, description="present values a feature needs to be judged")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="family-wise false-flag rate per run")
    psi_warn: float = Field(default=0.1, gt=0)
    psi_drift: float = Field(default=0.2, gt=0)
    shift_warn: float = Field(default=0.03, gt=0, le=1, description="KS / total variation that warns")
    shift_drift: float = Field(default=0.05, gt=0, le=1, description="KS / total variation that flags drift")
    missing_shift: float = Field(default=0.10, gt=0, le=1, description="absolute change in missing fraction")
    max_violation_rate: float = Field(default=0.01, ge=0, le=1, description="share of rows breaking the contract")
    epsilon: float = Field(default=1e-4, gt=0, lt=0.01, description="PSI smoothing of empty bins")
    js_base: float = Field(default=2.0, gt=1)
    small_cell: int = Field(default=11, ge=1, description="unseen values named only from this many occurrences")
    attribution_shift: float = Field(
        default=0.05, gt=0, description="change in a feature's mean |contribution| (calibrated log-odds) that flags"
    )
    attribution_ratio: float = Field(
        default=1.5, gt=1, description="...and the factor it must also change by (up or down) to flag drift"
    )


@dataclass
class FeatureDrift:
    name: str
    kind: Literal["numeric", "categorical", "score"]
    status: Status
    reasons: list[str]
    rows: int
    present: int
    missing_fraction: float
    baseline_missing_fraction: float
    violation_rate: float
    violations: dict[str, int]
    psi: float = math.nan
    js: float = math.nan
    ks: float = math.nan  # numeric only (binned, a lower bound of the exact KS)
    ks_pvalue: float = math.nan
    tv: float = math.nan  # categorical only
    shift: float = math.nan  # the effect size the rule uses: ks or tv
    pvalue: float = math.nan  # chi-square homogeneity on the bins
    mean: float = math.nan
    baseline_mean: float = math.nan
    sd: float = math.nan
    baseline_sd: float = math.nan
    outside_training_range: float = math.nan  # excess share beyond the baseline's outer edges (clipped quantiles)
    unit_hint: str | None = None
    unit_change: str | None = None  # a known conversion factor seen in the mean and spread (units.py)
    bins: dict[str, Any] = field(default_factory=dict)  # labels, baseline and current proportions (for plots)
    unseen_values: dict[str, int] = field(default_factory=dict)  # only values seen >= small_cell times

    @property
    def flagged(self) -> bool:
        return self.status == "drift"


@dataclass
class DriftResult:
    verdict: Verdict
    model: str
    model_version: str
    variant: str
    rows: int
    settings: DriftSettings
    features: dict[str, FeatureDrift]
    score: FeatureDrift | None
    unexpected_columns: dict[str, int] = field(default_factory=dict)
    malformed_records: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    baseline_source: str = ""
    attributions: AttributionDrift | None = None
    attribution_note: str = ""

    @property
    def attribution_drifted(self) -> list[str]:
        return self.attributions.drifted if self.attributions is not None else []

    @property
    def drifted(self) -> list[str]:
        return [n for n, f in self.features.items() if f.status == "drift"]

    @property
    def warned(self) -> list[str]:
        return [n for n, f in self.features.items() if f.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "verdict": self.verdict,
            "model": self.model,
            "model_version": self.model_version,
            "variant": self.variant,
            "rows": self.rows,
            "window": {"first": self.first_time, "last": self.last_time},
            "drifted_features": self.drifted,
            "warned_features": self.warned,
            "score_drift": bool(self.score and self.score.status == "drift"),
            "malformed_records": self.malformed_records,
            "unexpected_columns": self.unexpected_columns,
            "baseline": self.baseline_source,
            "settings": self.settings.model_dump(),
            "features": {n: asdict(f) for n, f in self.features.items()},
            "score": asdict(self.score) if self.score else None,
            "attribution_drift": asdict(self.attributions) if self.attributions else None,
            "attribution_note": self.attribution_note,
        }


def _status(significant: bool, psi_value: float, shift: float, s: DriftSettings) -> Status:
    if not significant:
        return "stable"
    if psi_value >= s.psi_drift or shift >= s.shift_drift:
        return "drift"
    if psi_value >= s.psi_warn or shift >= s.shift_warn:
        return "warn"
    return "stable"


def _bin_labels(edges: np.ndarray) -> list[str]:
    return [f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(edges)]


def _numeric(
    name: str,
    base: NumericBaseline,
    counts: NumericCounts,
    rows: int,
    m: int,
    s: DriftSettings,
    kind: Literal["numeric", "score"] = "numeric",
) -> FeatureDrift:
    present, base_rows = counts.present, _rows(base)
    drift = _common(
        name,
        kind,
        base.missing_fraction,
        counts.missing,
        counts.invalid + counts.out_of_range,
        rows,
        present,
        {"not_a_number": counts.invalid, "out_of_range": counts.out_of_range},
    )
    drift.mean, drift.sd = counts.moments.mean if counts.moments.n else math.nan, counts.moments.sd
    drift.baseline_mean, drift.baseline_sd = base.mean, base.sd
    if counts.out_of_range and counts.alternate_unit_fits:
        unit, fits = max(counts.alternate_unit_fits.items(), key=lambda kv: kv[1])
        if fits >= 0.9 * counts.out_of_range:
            drift.unit_hint = unit
    if kind == "numeric":
        change = detect_unit_change(base.mean, base.sd, drift.mean, drift.sd, present, s.min_feature_rows)
        drift.unit_change = change.describe() if change else None
    if not base.usable or present < s.min_feature_rows:
        return _finish(drift, "insufficient-data", s, base_rows)
    current = normalise(counts.bins)
    drift.psi = psi(base.proportions, counts.bins, s.epsilon)
    drift.js = js_distance(base.proportions, counts.bins, s.js_base)
    drift.ks = drift.shift = ks_binned(
        base.proportions, counts.bins, counts.below, counts.above, (base.tail_below, base.tail_above)
    )
    drift.ks_pvalue = ks_pvalue(drift.ks, base.present_rows, present)
    drift.pvalue = chi2_homogeneity(base.proportions, base.present_rows, counts.bins)[1]
    drift.outside_training_range = max(0.0, (counts.below + counts.above) / present - base.tail_share)
    drift.bins = {
        "labels": _bin_labels(base.edges),
        "baseline": base.proportions.tolist(),
        "current": current.tolist(),
        "below": counts.below / present,
        "above": counts.above / present,
    }
    return _finish(drift, _status(drift.pvalue < s.alpha / m, drift.psi, drift.shift, s), s, base_rows)


def _categorical(
    name: str,
    base: CategoricalBaseline,
    counts: CategoricalCounts,
    rows: int,
    m: int,
    s: DriftSettings,
    contract_lists_levels: bool,
) -> FeatureDrift:
    present, base_rows = counts.present, _rows(base)
    violations = {"unseen_category": counts.unseen} if contract_lists_levels else {}
    drift = _common(
        name, "categorical", base.missing_fraction, counts.missing, sum(violations.values()), rows, present, violations
    )
    unseen = {k: v for k, v in counts.levels.items() if k not in set(base.levels)}
    drift.unseen_values = {k: v for k, v in unseen.items() if v >= s.small_cell and k != OTHER_UNSEEN}
    if not base.usable or present < s.min_feature_rows:
        return _finish(drift, "insufficient-data", s, base_rows)
    # Unseen values pool into one bucket whose baseline share is 0 (smoothed): many distinct garbage values
    # must not count as many bins.
    expected = np.append(base.proportions, 0.0)
    actual = np.array([counts.levels.get(level, 0) for level in base.levels] + [sum(unseen.values())], dtype=float)
    drift.psi = psi(expected, actual, s.epsilon)
    drift.js = js_distance(expected, actual, s.js_base)
    drift.tv = drift.shift = total_variation(expected, actual)
    drift.pvalue = chi2_homogeneity(expected, base.present_rows, actual)[1]
    drift.bins = {
        "labels": [*base.levels, UNSEEN],
        "baseline": expected.tolist(),
        "current": normalise(actual).tolist(),
    }
    return _finish(drift, _status(drift.pvalue < s.alpha / m, drift.psi, drift.shift, s), s, base_rows)


def _rows(base: FeatureBaseline) -> float:
    """All baseline rows (present / (1 - missing)): the denominator of the baseline's missing fraction."""
    return base.present_rows / (1 - base.missing_fraction) if base.missing_fraction < 1 else 0.0


def _common(
    name: str,
    kind: Literal["numeric", "categorical", "score"],
    baseline_missing: float,
    missing: int,
    violating: int,
    rows: int,
    present: int,
    violations: dict[str, int],
) -> FeatureDrift:
    drift = FeatureDrift(
        name=name,
        kind=kind,
        status="stable",
        reasons=[],
        rows=rows,
        present=present,
        missing_fraction=missing / rows if rows else math.nan,
        baseline_missing_fraction=baseline_missing,
        violation_rate=violating / rows if rows else math.nan,
        violations=violations,
    )
    return drift


def _finish(drift: FeatureDrift, distribution: Status, s: DriftSettings, baseline_rows: float) -> FeatureDrift:
    reasons: list[str] = []
    if distribution == "drift":
        reasons.append("distribution")
    change = abs(drift.missing_fraction - drift.baseline_missing_fraction)
    if drift.rows and change >= s.missing_shift:
        p = two_proportion_pvalue(drift.missing_fraction, drift.rows, drift.baseline_missing_fraction, baseline_rows)
        if p < s.alpha:
            reasons.append("missingness")
    if drift.kind != "score" and drift.violation_rate > s.max_violation_rate:
        reasons.append("contract")
    if drift.unit_change:
        reasons.append("unit")
    drift.reasons = reasons
    drift.status = "drift" if reasons else distribution
    return drift


def compare(
    baseline: Baseline,
    summary: Summary,
    settings: DriftSettings | None = None,
    *,
    variant: str = "AllTraffic",
    malformed: dict[str, int] | None = None,
) -> DriftResult:
    s = settings or DriftSettings()
    judged = [n for n, c in summary.features.items() if c.present >= s.min_feature_rows]
    m = max(1, len(judged) + (1 if summary.score is not None else 0))  # Bonferroni family
    contract = baseline.contract
    features = {}
    for name, base in baseline.features.items():
        counts = summary.features[name]
        if isinstance(base, NumericBaseline) and isinstance(counts, NumericCounts):
            features[name] = _numeric(name, base, counts, summary.rows, m, s)
        elif isinstance(base, CategoricalBaseline) and isinstance(counts, CategoricalCounts):
            listed = contract is not None and name in contract.columns and contract.columns[name].categories is not None
            features[name] = _categorical(name, base, counts, summary.rows, m, s, listed)
    score = None
    if baseline.score is not None and summary.score is not None:
        score = _numeric("score", baseline.score, summary.score, summary.rows, m, s, kind="score")
    attributions = None
    if baseline.attributions is not None and summary.attributions is not None:
        attributions = compare_attributions(
            baseline.attributions,
            summary.attributions,
            s.attribution_shift,
            s.attribution_ratio,
            s.min_feature_rows,
            UNITS,
        )
    if summary.rows < s.min_rows:
        verdict: Verdict = "insufficient-data"
    elif (
        any(f.status == "drift" for f in features.values())
        or (score is not None and score.status == "drift")
        or (attributions is not None and attributions.status == "drift")
    ):
        verdict = "drift"
    else:
        verdict = "no-drift"
    return DriftResult(
        verdict=verdict,
        model=baseline.model_name,
        model_version=baseline.model_version,
        variant=variant,
        rows=summary.rows,
        settings=s,
        features=features,
        score=score,
        unexpected_columns=summary.unexpected_columns,
        malformed_records=dict(malformed or {}),
        first_time=summary.first_time,
        last_time=summary.last_time,
        baseline_source=baseline.source,
        attributions=attributions,
        attribution_note=_attribution_note(baseline, summary, attributions),
    )


def _attribution_note(baseline: Baseline, summary: Summary, attributions: AttributionDrift | None) -> str:
    if attributions is not None:
        return "exact TreeSHAP"
    if baseline.attributions is not None and baseline.explainer is not None and summary.attributions is None:
        return "the window's counts hold no attribution sums (partials written without the model?)"
    return baseline.attribution_note


def detect_drift(
    baseline: Baseline,
    current: pd.DataFrame,
    settings: DriftSettings | None = None,
    *,
    variant: str = "AllTraffic",
    malformed: dict[str, int] | None = None,
) -> DriftResult:
    """Summarise `current` (features, optional `score` and `inference_time` columns) and compare it."""
    return compare(baseline, summarize(current, baseline), settings, variant=variant, malformed=malformed)


__all__ = ["DriftResult", "DriftSettings", "FeatureBaseline", "FeatureDrift", "compare", "detect_drift"]
