"""Compare the shadow variant with production on the same requests: the numbers behind `shadow report`.

Pairs are matched by inference id (the caller's InferenceId, else SageMaker's eventId, as the capture parser
in `pipelines.monitoring.drift.capture` reads them); ids seen more than once in a variant are ambiguous and dropped.
Each variant flags at its own package's operating threshold, because that is what a clinician would see.

Criteria (all must hold, on at least `min_matched` valid pairs):
- agreement: share of pairs both flag the same way, at least `min_agreement`;
- mean absolute score difference at most `max_mean_abs_diff`;
- distribution difference: two-sample Kolmogorov-Smirnov statistic at most `max_ks`;
- invalid outputs (unreadable, NaN, outside [0, 1]) in the shadow at most `max_invalid_rate`;
- operational (CloudWatch, per variant): shadow 5XX rate at most production's + `max_error_rate_increase`,
  shadow p99 ModelLatency within the release SLO. Without these numbers the report is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class ShadowCriteria:
    min_matched: int = 200
    min_agreement: float = 0.95
    max_mean_abs_diff: float = 0.05
    max_ks: float = 0.10
    max_invalid_rate: float = 0.01
    max_error_rate_increase: float = 0.005
    latency_p99_ms: float = 500.0


@dataclass(frozen=True)
class VariantOperations:
    """CloudWatch numbers of one variant over the report window."""

    invocations: float
    errors_5xx: float
    latency_p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors_5xx / self.invocations if self.invocations else None


@dataclass
class ShadowComparison:
    verdict: str
    counts: dict[str, int]
    scores: dict[str, float | None]
    operations: dict[str, dict[str, float | None] | None]
    checks: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def _valid(scores: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(scores, errors="coerce")
    return numeric.notna() & (numeric >= 0) & (numeric <= 1)


def _unique(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    ids = frame["inference_id"]
    duplicated = ids.duplicated(keep=False) | ids.isna()
    return frame.loc[~duplicated], int(duplicated.sum())


def _operations(ops: VariantOperations | None) -> dict[str, float | None] | None:
    if ops is None:
        return None
    return {
        "invocations": ops.invocations,
        "errors_5xx": ops.errors_5xx,
        "error_rate": ops.error_rate,
        "latency_p99_ms": ops.latency_p99_ms,
    }


def compare(
    production: pd.DataFrame,
    shadow: pd.DataFrame,
    *,
    production_threshold: float,
    shadow_threshold: float,
    criteria: ShadowCriteria,
    production_ops: VariantOperations | None = None,
    shadow_ops: VariantOperations | None = None,
) -> ShadowComparison:
    """`production` and `shadow` hold one row per scored record with `inference_id` and `score`."""
    prod_unique, prod_dupes = _unique(production)
    shadow_unique, shadow_dupes = _unique(shadow)
    pairs = prod_unique[["inference_id", "score"]].merge(
        shadow_unique[["inference_id", "score"]], on="inference_id", suffixes=("_production", "_shadow")
    )
    both_valid = _valid(pairs["score_production"]) & _valid(pairs["score_shadow"])
    valid = pairs.loc[both_valid]
    p = valid["score_production"].astype(float).to_numpy()
    s = valid["score_shadow"].astype(float).to_numpy()
    shadow_invalid = int((~_valid(shadow["score"])).sum()) if len(shadow) else 0
    counts = {
        "production_rows": len(production),
        "shadow_rows": len(shadow),
        "matched": len(pairs),
        "matched_valid": len(valid),
        "production_unmatched": len(prod_unique) - len(pairs),
        "shadow_unmatched": len(shadow_unique) - len(pairs),
        "ambiguous_ids": prod_dupes + shadow_dupes,
        "shadow_invalid": shadow_invalid,
        "production_invalid": int((~_valid(production["score"])).sum()) if len(production) else 0,
    }
    scores = _score_stats(p, s, production_threshold, shadow_threshold)
    scores["shadow_invalid_rate"] = shadow_invalid / len(shadow) if len(shadow) else None
    operations = {"production": _operations(production_ops), "shadow": _operations(shadow_ops)}
    result = ShadowComparison(INCONCLUSIVE, counts, scores, operations)
    _judge(result, criteria, production_ops, shadow_ops)
    return result


def _score_stats(p: np.ndarray, s: np.ndarray, tp: float, ts: float) -> dict[str, float | None]:
    if len(p) == 0:
        return {
            "production_threshold": tp,
            "shadow_threshold": ts,
            "agreement": None,
            "mean_abs_diff": None,
            "p95_abs_diff": None,
            "ks_statistic": None,
            "ks_pvalue": None,
            "production_flag_rate": None,
            "shadow_flag_rate": None,
        }
    diff = np.abs(p - s)
    ks = ks_2samp(p, s)
    return {
        "production_threshold": tp,
        "shadow_threshold": ts,
        "agreement": float(np.mean((p >= tp) == (s >= ts))),
        "mean_abs_diff": float(diff.mean()),
        "p95_abs_diff": float(np.quantile(diff, 0.95)),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "production_flag_rate": float(np.mean(p >= tp)),
        "shadow_flag_rate": float(np.mean(s >= ts)),
    }


def _check(result: ShadowComparison, name: str, value: float | None, limit: float, ok: bool | None) -> None:
    result.checks.append({"criterion": name, "value": value, "limit": limit, "passed": ok})
    if ok is False:
        result.reasons.append(f"{name} {value:.4g} outside the limit {limit:g}")


def _judge(
    result: ShadowComparison, criteria: ShadowCriteria, prod: VariantOperations | None, shadow: VariantOperations | None
) -> None:
    scores, matched = result.scores, result.counts["matched_valid"]
    inconclusive = []
    if matched < criteria.min_matched:
        inconclusive.append(f"only {matched} matched requests with valid scores (needs {criteria.min_matched})")
    else:
        # With matched requests every score is computed; a missing one fails its criterion rather than passing.
        agreement, diff, ks = scores["agreement"], scores["mean_abs_diff"], scores["ks_statistic"]
        _check(
            result,
            "agreement",
            agreement,
            criteria.min_agreement,
            agreement is not None and agreement >= criteria.min_agreement,
        )
        _check(
            result,
            "mean_abs_diff",
            diff,
            criteria.max_mean_abs_diff,
            diff is not None and diff <= criteria.max_mean_abs_diff,
        )
        _check(result, "ks_statistic", ks, criteria.max_ks, ks is not None and ks <= criteria.max_ks)
    invalid = scores["shadow_invalid_rate"]
    if invalid is not None:
        _check(result, "shadow_invalid_rate", invalid, criteria.max_invalid_rate, invalid <= criteria.max_invalid_rate)
    if prod is None or shadow is None or prod.error_rate is None or shadow.error_rate is None:
        inconclusive.append("no CloudWatch invocation metrics for both variants over the window")
    else:
        increase = shadow.error_rate - prod.error_rate
        _check(
            result,
            "error_rate_increase",
            increase,
            criteria.max_error_rate_increase,
            increase <= criteria.max_error_rate_increase,
        )
        latency = shadow.latency_p99_ms
        if latency is None or math.isnan(latency):
            inconclusive.append("no p99 ModelLatency for the shadow variant")
        else:
            limit = criteria.latency_p99_ms
            _check(result, "shadow_latency_p99_ms", latency, limit, latency <= limit)
    if any(c["passed"] is False for c in result.checks):
        result.verdict = FAIL
    elif inconclusive:
        result.verdict = INCONCLUSIVE
        result.reasons.extend(inconclusive)
    else:
        result.verdict = PASS
