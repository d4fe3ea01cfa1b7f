"""Attribution drift: does the model lean on its inputs differently than in training?

Per feature, the mean |exact contribution| (`pipelines.explain`, calibrated log-odds) over the window's rows is
compared with the same figure over the train split (the bundle baseline's `attributions`). The model is fixed,
so a change comes from the inputs - but also from changes the per-input tests cannot see (several inputs moving
together, a subgroup mix that pushes more patients down a different branch), and it is weighted by what the
model actually uses: a large change in an input the model barely reads does not show here.

Rule (`DriftSettings.attribution_shift` / `attribution_ratio`): a feature drifts when its mean |contribution|
changes by at least `attribution_shift` log-odds AND by at least the factor `attribution_ratio` (up or down);
it warns on the shift alone, or on the factor with at least half the shift (tiny contributions that double stay
stable). At least `min_feature_rows` explained rows are needed. Only sums and
counts are kept (never a row), so shards merge exactly, like the histogram counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.contracts import Contract
from pipelines.explain import ModelExplainer

MAX_EXPLAINED_ROWS = 5000  # per shard: ~1.5 ms a row, a few seconds; a fixed sample beyond that


@dataclass
class AttributionSums:
    """Sum of |contribution| per feature over the explained rows of a window (mergeable across shards)."""

    rows: int
    sums: dict[str, float]

    def merge(self, other: AttributionSums) -> AttributionSums:
        return AttributionSums(self.rows + other.rows, {k: v + other.sums[k] for k, v in self.sums.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "sums": self.sums}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AttributionSums:
        return cls(int(doc["rows"]), {str(k): float(v) for k, v in doc["sums"].items()})


def model_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Captured values as the model reads them (`train.features`): categories as strings, numbers as floats;
    anything unreadable is missing, which the model routes as it routes missing values."""
    out = frame.reindex(columns=contract.feature_columns)
    for name in contract.categorical_features:
        column = out[name].astype(object)
        out[name] = column.where(column.notna(), None).map(lambda v: v if v is None else str(v))
    for name in contract.numeric_features:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
    return out


def attribution_sums(explainer: ModelExplainer, frame: pd.DataFrame, contract: Contract) -> AttributionSums:
    rows = frame if len(frame) <= MAX_EXPLAINED_ROWS else frame.sample(MAX_EXPLAINED_ROWS, random_state=0)
    if len(rows) == 0:
        return AttributionSums(0, dict.fromkeys(explainer.features, 0.0))
    explanation = explainer.explain(model_frame(rows, contract))
    totals = abs(explanation.contributions).sum(axis=0)
    return AttributionSums(len(rows), {name: float(t) for name, t in zip(explainer.features, totals, strict=True)})


@dataclass
class FeatureAttribution:
    name: str
    baseline: float  # mean |contribution| on the train split
    current: float  # mean |contribution| in the window
    change: float  # current - baseline
    ratio: float  # current / baseline (inf when the baseline is 0)
    status: str  # drift, warn, stable


@dataclass
class AttributionDrift:
    status: str  # drift, warn, stable, insufficient-data
    rows: int
    units: str
    features: dict[str, FeatureAttribution] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        return [n for n, f in self.features.items() if f.status == "drift"]


def compare_attributions(
    baseline: dict[str, float], current: AttributionSums, shift: float, ratio: float, min_rows: int, units: str
) -> AttributionDrift:
    if current.rows < min_rows:
        return AttributionDrift("insufficient-data", current.rows, units)
    features = {}
    for name, base in baseline.items():
        now = current.sums.get(name, 0.0) / current.rows
        change = now - base
        factor = now / base if base > 0 else (math.inf if now > 0 else 1.0)
        big = abs(change) >= shift
        moved = factor >= ratio or factor <= 1 / ratio
        status = "drift" if big and moved else "warn" if big or (moved and abs(change) >= shift / 2) else "stable"
        features[name] = FeatureAttribution(name, base, now, change, factor, status)
    statuses = {f.status for f in features.values()}
    overall = "drift" if "drift" in statuses else "warn" if "warn" in statuses else "stable"
    return AttributionDrift(overall, current.rows, units, features)
