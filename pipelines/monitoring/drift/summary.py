"""Current-window counts over the baseline's bins: the only place rows are touched, and the unit of sharding.

A `Summary` holds, per feature, histogram counts on the baseline's bins (or level counts), missing and
contract-violation counts and running moments - never a row. Summaries of disjoint row sets merge exactly
(`merge`), so a SageMaker Processing job can summarise its shard of capture files on each instance and one
step compares the merged counts with the baseline. No individual value leaves this module: unseen category
values are kept only as counts, and only the most frequent few are named (small cells are suppressed when
reported).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.contracts import ColumnSpec
from pipelines.monitoring.drift.attribution import AttributionSums, attribution_sums
from pipelines.monitoring.drift.baseline import Baseline, CategoricalBaseline, NumericBaseline

MAX_UNSEEN_LEVELS = 50  # distinct unseen values tracked by name; the rest pool into OTHER_UNSEEN
OTHER_UNSEEN = "(other unseen values)"
SUMMARY_FORMAT = 1
PARALLEL_ROWS = 200_000  # below this, thread start-up costs more than it saves
# Columns a capture frame carries besides features and score; not reported as unexpected input fields.
META_COLUMNS = ("inference_id", "event_id", "inference_time", "variant", "endpoint", "record_index", "source_file")


@dataclass
class Moments:
    """Count, mean and sum of squared deviations; merged with Chan et al.'s parallel update."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        if values.size == 0:
            return cls()
        mean = float(values.mean())
        return cls(int(values.size), mean, float(np.square(values - mean).sum()))

    def merge(self, other: Moments) -> Moments:
        n = self.n + other.n
        if n == 0:
            return Moments()
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return Moments(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    @property
    def sd(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else math.nan


@dataclass
class NumericCounts:
    bins: np.ndarray
    missing: int = 0
    invalid: int = 0  # present but not a number (or a fraction where the contract says integer)
    out_of_range: int = 0  # numbers outside the contract's range: still binned, and a contract violation
    below: int = 0  # below the smallest training value
    above: int = 0  # above the largest training value
    moments: Moments = field(default_factory=Moments)
    alternate_unit_fits: dict[str, int] = field(default_factory=dict)  # out-of-range values that fit in that unit

    kind = "numeric"

    @property
    def present(self) -> int:
        return int(self.bins.sum())

    def merge(self, other: NumericCounts) -> NumericCounts:
        units = Counter(self.alternate_unit_fits) + Counter(other.alternate_unit_fits)
        return NumericCounts(
            self.bins + other.bins,
            self.missing + other.missing,
            self.invalid + other.invalid,
            self.out_of_range + other.out_of_range,
            self.below + other.below,
            self.above + other.above,
            self.moments.merge(other.moments),
            dict(units),
        )


@dataclass
class CategoricalCounts:
    levels: dict[str, int]  # every baseline level (zero if absent) plus unseen values
    missing: int = 0
    unseen: int = 0  # values outside the baseline's levels (a contract violation when the contract lists them)

    kind = "categorical"

    @property
    def present(self) -> int:
        return int(sum(self.levels.values()))

    def merge(self, other: CategoricalCounts) -> CategoricalCounts:
        levels = dict(self.levels)  # a plain dict: Counter arithmetic would drop the zero-count baseline levels
        for level, count in other.levels.items():
            levels[level] = levels.get(level, 0) + count
        return CategoricalCounts(levels, self.missing + other.missing, self.unseen + other.unseen)


def _zeros(levels: tuple[str, ...]) -> Counter[str]:
    return Counter(dict.fromkeys(levels, 0))  # built from a mapping, so the zero counts are kept


FeatureCounts = NumericCounts | CategoricalCounts


@dataclass
class Summary:
    rows: int
    features: dict[str, FeatureCounts]
    score: NumericCounts | None = None
    unexpected_columns: dict[str, int] = field(default_factory=dict)  # names only, never values
    first_time: str | None = None
    last_time: str | None = None
    attributions: AttributionSums | None = None  # sums of |contribution|, when the baseline can explain

    def merge(self, other: Summary) -> Summary:
        if set(self.features) != set(other.features):
            raise ValueError("summaries of different baselines cannot be merged")
        score = self.score or other.score
        if self.score is not None and other.score is not None:
            score = self.score.merge(other.score)
        times = [t for t in (self.first_time, self.last_time, other.first_time, other.last_time) if t]
        return Summary(
            rows=self.rows + other.rows,
            features={k: v.merge(other.features[k]) for k, v in self.features.items()},  # type: ignore[arg-type]
            score=score,
            unexpected_columns=dict(Counter(self.unexpected_columns) + Counter(other.unexpected_columns)),
            first_time=min(times) if times else None,
            last_time=max(times) if times else None,
            attributions=self.attributions.merge(other.attributions)
            if self.attributions is not None and other.attributions is not None
            else self.attributions or other.attributions,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": SUMMARY_FORMAT,
            "rows": self.rows,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "unexpected_columns": self.unexpected_columns,
            "features": {k: _counts_to_dict(v) for k, v in self.features.items()},
            "score": _counts_to_dict(self.score) if self.score else None,
            "attributions": self.attributions.to_dict() if self.attributions else None,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Summary:
        if doc.get("format_version") != SUMMARY_FORMAT:
            raise ValueError(f"partial summary format {doc.get('format_version')} is not {SUMMARY_FORMAT}")
        return cls(
            rows=int(doc["rows"]),
            features={k: _counts_from_dict(v) for k, v in doc["features"].items()},
            score=_counts_from_dict(doc["score"]) if doc.get("score") else None,  # type: ignore[arg-type]
            unexpected_columns=dict(doc.get("unexpected_columns", {})),
            first_time=doc.get("first_time"),
            last_time=doc.get("last_time"),
            attributions=AttributionSums.from_dict(doc["attributions"]) if doc.get("attributions") else None,
        )


def merge(summaries: list[Summary]) -> Summary:
    if not summaries:
        raise ValueError("nothing to merge")
    merged = summaries[0]
    for other in summaries[1:]:
        merged = merged.merge(other)
    return merged


def _counts_to_dict(counts: FeatureCounts) -> dict[str, Any]:
    if isinstance(counts, CategoricalCounts):
        return {"kind": "categorical", "levels": counts.levels, "missing": counts.missing, "unseen": counts.unseen}
    m = counts.moments
    return {
        "kind": "numeric",
        "bins": counts.bins.tolist(),
        "missing": counts.missing,
        "invalid": counts.invalid,
        "out_of_range": counts.out_of_range,
        "below": counts.below,
        "above": counts.above,
        "moments": [m.n, m.mean, m.m2],
        "alternate_unit_fits": counts.alternate_unit_fits,
    }


def _counts_from_dict(doc: dict[str, Any]) -> FeatureCounts:
    if doc["kind"] == "categorical":
        return CategoricalCounts(
            {str(k): int(v) for k, v in doc["levels"].items()}, int(doc["missing"]), int(doc["unseen"])
        )
    n, mean, m2 = doc["moments"]
    return NumericCounts(
        np.asarray(doc["bins"], dtype=np.int64),
        int(doc["missing"]),
        int(doc["invalid"]),
        int(doc["out_of_range"]),
        int(doc["below"]),
        int(doc["above"]),
        Moments(int(n), float(mean), float(m2)),
        dict(doc.get("alternate_unit_fits", {})),
    )


def _as_float(raw: pd.Series | None, rows: int) -> tuple[np.ndarray, int]:
    """Values as float64 (NaN = missing; a read-only view when the column already is float64) and the count
    of present values that are not finite numbers."""
    if raw is None:
        return np.full(rows, np.nan), 0
    if raw.dtype == np.float64:
        values = raw.to_numpy(copy=False)
    elif pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = raw.where(raw.notna(), None).astype(object)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        invalid = raw.notna().to_numpy() & ~np.isfinite(values)
        return np.where(invalid, np.nan, values), int(invalid.sum())
    infinite = np.isinf(values)
    if infinite.any():
        return np.where(infinite, np.nan, values), int(infinite.sum())
    return values, 0


def _binned(present: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(counts per baseline bin, below the first edge, above the last edge) of non-missing values.

    With at most 11 edges, one comparison pass per edge (into a reused buffer) beats a binary search per value
    (searchsorted) by ~3x on this hardware and needs no index array.
    """
    buffer = np.empty(present.shape, dtype=bool)
    below_edge = np.array([np.count_nonzero(np.less(present, e, out=buffer)) for e in edges[:-1]], dtype=np.int64)
    cumulative = np.append(below_edge[1:], present.size)  # values below e1, e2, ..., then all of them
    counts = np.diff(np.concatenate([[0], cumulative]))
    return counts, int(below_edge[0]), int(np.count_nonzero(np.greater(present, edges[-1], out=buffer)))


def _moments(present: np.ndarray) -> Moments:
    if present.size == 0:
        return Moments()
    mean = float(present.sum() / present.size)
    deviation = present - mean
    return Moments(int(present.size), mean, float(np.einsum("i,i->", deviation, deviation)))


def numeric_counts(raw: pd.Series | None, rows: int, base: NumericBaseline, spec: ColumnSpec | None) -> NumericCounts:
    values, invalid = _as_float(raw, rows)
    missing_mask = np.isnan(values)
    present = values[~missing_mask] if missing_mask.any() else values
    if spec is not None and spec.dtype == "integer" and present.size:
        fractional = present != np.floor(present)
        if fractional.any():  # a fraction where the contract says integer: a violation, not a value
            invalid += int(fractional.sum())
            present = present[~fractional]
    missing = rows - invalid - present.size
    out_of_range, fits = 0, {}
    if spec is not None and spec.range is not None and present.size:
        lo, hi = spec.range
        outside = present[(present < lo) | (present > hi)]
        out_of_range = int(outside.size)
        for alt in spec.alternate_units if out_of_range else []:
            converted = outside * alt.scale + alt.offset
            fits[alt.unit] = int(((converted >= lo) & (converted <= hi)).sum())
    moments = _moments(present)
    if not base.usable:  # the training column was empty: only missingness and violations can be judged
        return NumericCounts(
            np.zeros(0, dtype=np.int64), missing, invalid, out_of_range, moments=moments, alternate_unit_fits=fits
        )
    bins, below, above = _binned(present, base.edges)
    return NumericCounts(bins, missing, invalid, out_of_range, below, above, moments, fits)


def categorical_counts(raw: pd.Series | None, rows: int, base: CategoricalBaseline) -> CategoricalCounts:
    levels = _zeros(base.levels)
    if raw is None:
        return CategoricalCounts(dict(levels), missing=rows)
    counts = raw.value_counts(dropna=True)  # a handful of distinct values: the per-row work is in pandas
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        levels[_label(value)] += int(count)
    known = set(base.levels)
    unseen = Counter({k: v for k, v in levels.items() if k not in known})
    kept = dict(unseen.most_common(MAX_UNSEEN_LEVELS))
    pooled = sum(unseen.values()) - sum(kept.values())
    result = {k: levels[k] for k in base.levels} | kept | ({OTHER_UNSEEN: pooled} if pooled else {})
    return CategoricalCounts(result, missing=rows - int(sum(levels.values())), unseen=int(sum(unseen.values())))


def _label(value: object) -> str:
    """Category labels as the pipeline stores them: strings; a whole float read from CSV or JSON drops '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def summarize(
    frame: pd.DataFrame,
    baseline: Baseline,
    *,
    score_column: str = "score",
    time_column: str = "inference_time",
    ignore: tuple[str, ...] = META_COLUMNS,
) -> Summary:
    """Count one batch of rows (a table, or parsed capture) against the baseline."""
    rows = len(frame)
    contract = baseline.contract

    def count(name: str) -> FeatureCounts:
        base, raw = baseline.features[name], frame[name] if name in frame.columns else None
        if isinstance(base, NumericBaseline):
            spec = contract.columns.get(name) if contract is not None else None
            return numeric_counts(raw, rows, base, spec)
        return categorical_counts(raw, rows, base)

    names = list(baseline.features)
    if rows >= PARALLEL_ROWS:  # numpy releases the GIL in these loops: columns count in parallel
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            features = dict(zip(names, pool.map(count, names), strict=True))
    else:
        features = {name: count(name) for name in names}
    score = None
    if baseline.score is not None and score_column in frame.columns:
        score = numeric_counts(frame[score_column], rows, baseline.score, None)
    known = {*baseline.features, score_column, time_column, *ignore}
    unexpected = {str(c): int(frame[c].notna().sum()) for c in frame.columns if c not in known}
    first = last = None
    if time_column in frame.columns and rows:
        times = pd.to_datetime(frame[time_column], errors="coerce", utc=True).dropna()
        if len(times):
            first, last = times.min().isoformat(), times.max().isoformat()
    attributions = None
    if baseline.explainer is not None and contract is not None:
        attributions = attribution_sums(baseline.explainer, frame, contract)
    return Summary(rows, features, score, {k: v for k, v in unexpected.items() if v}, first, last, attributions)
