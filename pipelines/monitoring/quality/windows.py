"""Rolling-window model quality on labelled inferences: discrimination, calibration, subgroups.

Windows are by inference time (when the prediction was made: "how good were the predictions we made in those
30 days?"), each `window_days` long, stepping back `step_days` at a time. The newest window ends
`label_lag_days` before the as-of time, because outcomes of newer predictions are not adjudicated yet (30-day
follow-up plus adjudication); a window whose predictions are mostly still unlabelled is not judged either.

Sample-size guards: AUC needs `min_positives` and `min_negatives`; a subgroup needs `min_subgroup_events` of
each. Metric code is the training pipeline's (`pipelines.metrics`: DeLong CI, calibration slope/intercept), so
production numbers are comparable with the model's evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as sps
from sklearn.metrics import brier_score_loss

from pipelines.contracts import Contract
from pipelines.metrics import at_threshold, auc_with_ci, calibration
from pipelines.steps.fairness import NOT_ASSESSED, subgroups

WindowStatus = Literal["ok", "insufficient-data"]


class QualitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(default=30, ge=1)
    step_days: int = Field(default=7, ge=1)
    windows: int = Field(default=6, ge=1, description="how many windows back from the newest")
    label_lag_days: int = Field(default=45, ge=0, description="30-day follow-up plus adjudication time")
    min_positives: int = Field(default=20, ge=2)
    min_negatives: int = Field(default=20, ge=2)
    min_label_coverage: float = Field(default=0.5, ge=0, le=1, description="labelled share of a window's predictions")
    min_subgroup_events: int = Field(default=10, ge=2, description="positives and negatives a subgroup needs")
    max_auc_drop: float = Field(default=0.05, gt=0, le=1, description="AUC below the evaluation that means decay")
    min_auc: float = Field(default=0.65, ge=0.5, le=1, description="AUC floor whatever the evaluation said")
    max_oe_deviation: float = Field(default=0.2, gt=0, description="|observed/expected - 1| that means miscalibrated")
    calibration_slope_band: tuple[float, float] = (0.7, 1.3)
    max_subgroup_auc_gap: float = Field(default=0.10, gt=0, le=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)


@dataclass
class WindowQuality:
    start: str
    end: str
    inferences: int
    labelled: int
    positives: int
    negatives: int
    label_coverage: float
    status: WindowStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    subgroups: dict[str, dict[str, Any]] = field(default_factory=dict)


def observed_expected(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration-in-the-large as observed/expected events, with the p-value of O = E (score variance)."""
    expected, observed = float(p.sum()), float(y.sum())
    variance = float((p * (1 - p)).sum())
    if expected <= 0 or variance <= 0:
        return math.nan, math.nan
    return observed / expected, float(2 * sps.norm.sf(abs(observed - expected) / math.sqrt(variance)))


def window_metrics(y: np.ndarray, p: np.ndarray, threshold: float | None) -> dict[str, Any]:
    auc, se, lo, hi = auc_with_ci(y, p)
    oe, oe_p = observed_expected(y, p)
    metrics = {
        "auc": auc,
        "auc_se": se,
        "auc_ci95": [lo, hi],
        "brier": float(brier_score_loss(y, p)),
        **calibration(y, p),
        "observed_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "observed_expected": oe,
        "observed_expected_pvalue": oe_p,
    }
    if threshold is not None:
        point = at_threshold(y, p, threshold)
        metrics |= {k: point[k] for k in ("threshold", "sensitivity", "ppv", "alert_rate")}
    return metrics


def _subgroups(frame: pd.DataFrame, contract: Contract | None, s: QualitySettings) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    columns = contract.sensitive_columns if contract is not None else []
    for name in [c for c in columns if c in frame.columns]:
        groups = subgroups(frame[name], contract.columns[name])  # type: ignore[union-attr]
        table: dict[str, Any] = {}
        for group in sorted(set(groups) - {NOT_ASSESSED}, key=str):
            mask = (groups == group).to_numpy()
            y, p = frame["outcome"].to_numpy()[mask], frame["score"].to_numpy()[mask]
            pos = int(y.sum())
            row: dict[str, Any] = {"n": int(mask.sum()), "positives": pos, "auc": math.nan, "auc_ci95": [math.nan] * 2}
            row["status"] = "ok" if min(pos, row["n"] - pos) >= s.min_subgroup_events else "insufficient-data"
            if row["status"] == "ok":
                row["auc"], _, lo, hi = auc_with_ci(y, p)
                row["auc_ci95"] = [lo, hi]
            table[str(group)] = row
        judged = {g: r["auc"] for g, r in table.items() if r["status"] == "ok"}
        gap = max(judged.values()) - min(judged.values()) if len(judged) >= 2 else math.nan
        out[name] = {
            "groups": table,
            "auc_gap": gap,
            "lowest_group": min(judged, key=judged.__getitem__) if judged else None,
        }
    return out


def rolling_windows(
    labelled: pd.DataFrame,
    inferences: pd.DataFrame,
    settings: QualitySettings | None = None,
    *,
    as_of: pd.Timestamp | None = None,
    contract: Contract | None = None,
    threshold: float | None = None,
) -> list[WindowQuality]:
    """Windows newest first. `labelled` has score, outcome, inference_time (UTC) and any attributes;
    `inferences` has every usable inference's time (the coverage denominator)."""
    s = settings or QualitySettings()
    if as_of is None:
        as_of = inferences["inference_time"].max() if len(inferences) else pd.Timestamp.now(tz="UTC")
    newest_end = as_of - timedelta(days=s.label_lag_days)
    windows = []
    for k in range(s.windows):
        end = newest_end - timedelta(days=k * s.step_days)
        start = end - timedelta(days=s.window_days)
        in_window = (labelled["inference_time"] >= start) & (labelled["inference_time"] < end)
        made = int(((inferences["inference_time"] >= start) & (inferences["inference_time"] < end)).sum())
        part = labelled[in_window]
        y, p = part["outcome"].to_numpy().astype(int), part["score"].to_numpy(dtype=float)
        positives = int(y.sum())
        negatives = len(y) - positives
        coverage = len(part) / made if made else math.nan
        enough = positives >= s.min_positives and negatives >= s.min_negatives and coverage >= s.min_label_coverage
        window = WindowQuality(
            start.isoformat(),
            end.isoformat(),
            made,
            len(part),
            positives,
            negatives,
            coverage,
            "ok" if enough else "insufficient-data",
        )
        if positives >= 2 and negatives >= 2:  # shown for context even when too small to judge
            window.metrics = window_metrics(y, p, threshold)
            window.subgroups = _subgroups(part, contract, s)
        windows.append(window)
    return windows
