"""Binary-classifier metrics for clinical risk scores: discrimination with a confidence interval, calibration,
and the confusion matrix at the operating threshold.

Calibration follows Van Calster et al. (2019): the calibration intercept is calibration-in-the-large (a
logistic model of the outcome with the score's logit as an offset, slope fixed at 1; 0 is ideal), and the
calibration slope comes from regressing the outcome on the score's logit (1 is ideal; below 1 means the
scores are too extreme).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, brier_score_loss

_EPS = 1e-6


def auc_with_ci(y: np.ndarray, score: np.ndarray, z: float = 1.959964) -> tuple[float, float, float, float]:
    """AUC-ROC with its DeLong standard error and 95% CI (Sun & Xu's O(n log n) algorithm)."""
    y = np.asarray(y).astype(bool)
    positives, negatives = np.asarray(score)[y], np.asarray(score)[~y]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError("AUC needs both classes")
    combined = rankdata(np.concatenate([positives, negatives]))
    auc = (combined[:m].sum() - m * (m + 1) / 2) / (m * n)
    if m < 2 or n < 2:
        return float(auc), math.nan, math.nan, math.nan
    v_pos = (combined[:m] - rankdata(positives)) / n
    v_neg = 1.0 - (combined[m:] - rankdata(negatives)) / m
    se = math.sqrt(v_pos.var(ddof=1) / m + v_neg.var(ddof=1) / n)
    return float(auc), se, max(0.0, auc - z * se), min(1.0, auc + z * se)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _newton_logistic(design: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 50) -> np.ndarray:
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        mu = 1 / (1 + np.exp(-(design @ beta + offset)))
        gradient = design.T @ (y - mu)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(beta)), gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> dict[str, float]:
    y = np.asarray(y, dtype=float)
    lp = _logit(np.asarray(score, dtype=float))
    ones = np.ones((len(y), 1))
    intercept = _newton_logistic(ones, y, offset=lp)[0]
    slope = _newton_logistic(np.column_stack([ones, lp]), y, offset=np.zeros(len(y)))[1]
    order = np.argsort(score, kind="stable")
    ece = sum(len(b) / len(y) * abs(score[b].mean() - y[b].mean()) for b in np.array_split(order, bins) if len(b))
    return {"calibration_intercept": float(intercept), "calibration_slope": float(slope), "ece": float(ece)}


def at_threshold(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y).astype(bool)
    flagged = np.asarray(score) >= threshold
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    fn, tn = int((~flagged & y).sum()), int((~flagged & ~y).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    return {
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "alert_rate": ratio(tp + fp, len(y)),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def threshold_for_sensitivity(y: np.ndarray, score: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity reaches `target` (fewest alerts for the required catch rate)."""
    positives = np.sort(np.asarray(score)[np.asarray(y).astype(bool)])[::-1]
    if len(positives) == 0:
        raise ValueError("cannot set a sensitivity threshold without positives")
    needed = max(1, math.ceil(target * len(positives)))
    return float(positives[needed - 1])


def summarize(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    auc, se, lo, hi = auc_with_ci(y, score)
    return {
        "n": len(y),
        "prevalence": float(np.mean(y)),
        "auc": auc,
        "auc_se": se,
        "auc_ci95": [lo, hi],
        "pr_auc": float(average_precision_score(y, score)),
        "brier": float(brier_score_loss(y, score)),
        **calibration(y, score),
        "at_threshold": at_threshold(y, score, threshold),
    }
