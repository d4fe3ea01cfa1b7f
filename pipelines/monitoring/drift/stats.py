"""Drift statistics on counts over the baseline's bins: vectorised numpy, no per-row Python.

Everything here takes binned counts or proportions, because the baseline stores bins, not rows (patient-level
training data never leaves the training account) and because counts merge across shards.

- PSI (population stability index) = sum (q - p) ln(q / p) over the baseline's quantile bins: the symmetric
  Kullback-Leibler divergence. Empty bins are smoothed with `eps` so one unseen level cannot make it infinite.
  Conventional reading: < 0.1 stable, 0.1-0.2 moderate, >= 0.2 significant shift.
- Jensen-Shannon distance: sqrt of the JS divergence (base 2 by default, so it lies in [0, 1]); finite without
  smoothing and bounded, which makes it readable when PSI explodes (a unit change).
- Kolmogorov-Smirnov: the largest gap between the two cumulative distributions. When both samples are
  available (`ks_samples`) it is exact and equals `scipy.stats.ks_2samp`. With a baseline that keeps only
  bins (`ks_binned`) the gap can be evaluated only at the bin edges, where both CDFs are known exactly, so
  the binned statistic is a lower bound of the exact one: D_binned <= D <= D_binned + max_i max(p_i, q_i).
  For location and scale shifts of unimodal data the largest gap sits near the median or the deciles, which
  are edges, so the bound is tight in practice (tests check this against scipy); its p-value is conservative.
- Chi-square homogeneity test on the 2 x k table of baseline and current counts: the significance test for
  binned data, used with a Bonferroni correction across features before any effect size may raise a flag.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

EPS = 1e-4


def bin_indices(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Baseline bin of each (non-missing) value: bins are [e(i-1), e(i)), the last one closed; values below
    the first edge count in the first bin and values above the last edge in the last (the pipeline's rule)."""
    index = np.searchsorted(edges, values, side="right") - 1
    return np.clip(index, 0, len(edges) - 2)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(bin_indices(values, edges), minlength=len(edges) - 1).astype(np.int64)


def normalise(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def smooth(proportions: np.ndarray, eps: float = EPS) -> np.ndarray:
    p = np.asarray(proportions, dtype=float) + eps
    return p / p.sum()


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    """Population stability index of `actual` against `expected` (proportions or counts, same bins)."""
    p, q = smooth(normalise(expected), eps), smooth(normalise(actual), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray, base: float = 2.0) -> float:
    """Jensen-Shannon distance, equal to `scipy.spatial.distance.jensenshannon(p, q, base)`."""
    p, q = normalise(p), normalise(q)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_qm = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    divergence = max(0.5 * (kl_pm + kl_qm) / math.log(base), 0.0)
    return float(math.sqrt(divergence))


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance: the largest share of patients that any set of categories gained or lost. For an
    unordered categorical this is what KS is for a number (KS takes the sup over half-lines, TV over all sets)."""
    return float(0.5 * np.abs(normalise(p) - normalise(q)).sum())


def ks_binned(
    expected: np.ndarray,
    actual: np.ndarray,
    below: float = 0.0,
    above: float = 0.0,
    baseline_tails: tuple[float, float] = (0.0, 0.0),
) -> float:
    """KS statistic evaluated at the bin edges (see the module note). `expected` are baseline proportions,
    `actual` current counts per bin as `bin_counts` and `summary._binned` produce them: values outside the
    baseline's range already sit in the end bins. `below` / `above` say how many of the first / last bin's
    counts lie outside that range; they are not added again, only moved to the side of the first / last edge
    where they belong. `baseline_tails` are the baseline's own shares below the first / above the last edge (0
    when the edges are the training extremes; clipped quantile edges leave a small tail each side), placed the
    same way, so both CDFs are compared at the same points."""
    actual = np.asarray(actual, dtype=float)
    total = actual.sum()
    if total <= 0:
        return math.nan
    if not (0 <= below <= actual[0] and 0 <= above <= actual[-1]) or (actual.size == 1 and below + above > total):
        raise ValueError(
            f"ks_binned: below={below} / above={above} must count values already in the first / last bin "
            f"(first bin holds {actual[0]:g}, last {actual[-1]:g}); pass the end-bin counts, not extra ones"
        )
    inside = actual.copy()
    inside[0] -= below
    inside[-1] -= above
    low, high = baseline_tails
    baseline_cdf = np.concatenate([[0.0], np.cumsum(normalise(expected))])
    baseline_cdf[0], baseline_cdf[-1] = low, 1.0 - high
    current_cdf = np.concatenate([[below], below + np.cumsum(inside)]) / total
    return float(np.max(np.abs(baseline_cdf - current_cdf)))


def ks_samples(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sample KS statistic from raw samples (sorted once, CDFs by binary search)."""
    a, b = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n1: float, n2: float) -> float:
    """Asymptotic two-sided p-value, as `scipy.stats.ks_2samp(..., method="asymp")` computes it."""
    if not (n1 > 0 and n2 > 0) or math.isnan(d):
        return math.nan
    effective = round(n1 * n2 / (n1 + n2))
    return float(sps.kstwo.sf(d, max(effective, 1)))


def chi2_homogeneity(expected: np.ndarray, n_expected: float, actual: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test that both samples come from one distribution. The baseline
    side is rebuilt as proportions x its row count (the baseline stores proportions, not counts)."""
    baseline = normalise(expected) * n_expected
    current = np.asarray(actual, dtype=float)
    keep = (baseline + current) > 0
    baseline, current = baseline[keep], current[keep]
    n_b, n_c = baseline.sum(), current.sum()
    if keep.sum() < 2 or n_b <= 0 or n_c <= 0:
        return 0.0, 1.0
    column = baseline + current
    total = n_b + n_c
    expected_b, expected_c = column * n_b / total, column * n_c / total
    statistic = float(((baseline - expected_b) ** 2 / expected_b).sum())
    statistic += float(((current - expected_c) ** 2 / expected_c).sum())
    return statistic, float(sps.chi2.sf(statistic, keep.sum() - 1))


def two_proportion_pvalue(p1: float, n1: float, p2: float, n2: float) -> float:
    """Two-sided z-test for a change in a rate (missingness): pooled standard error."""
    if n1 <= 0 or n2 <= 0:
        return math.nan
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * sps.norm.sf(abs(p1 - p2) / se))
