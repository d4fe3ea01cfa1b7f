"""Step 5 - fairness: the candidate's performance in every subgroup of every sensitive attribute.

Per subgroup: size, events, AUC with its 95% CI, TPR and FPR at the operating threshold, and calibration
in the large (mean predicted risk minus observed rate). Per attribute: the largest gaps between subgroups,
each with a bootstrap 95% CI, so the decide step can tell a clear pass from a gap that may exceed its limit.
A subgroup with fewer test rows than `min_subgroup_size`, or too few events for an AUC, is marked
`too_small`: the gate cannot judge it, so the run is inconclusive rather than silently passing.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.contracts import ColumnSpec, Contract, load_contract
from pipelines.jobio import PROCESSING, read_json, read_table, write_json
from pipelines.metrics import auc_with_ci
from pipelines.settings import GateSettings

log = logging.getLogger("clinops.pipeline.fairness")
NOT_ASSESSED = "not assessed"
MISSING = "(missing)"


def _band_label(lo: float, hi: float) -> str:
    if float(lo).is_integer() and float(hi).is_integer():
        return f"{int(lo)}-{int(hi) - 1}"
    return f"[{lo:g}, {hi:g})"


def subgroups(values: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Map raw attribute values to the groups the contract says to judge."""
    if spec.bins is not None:
        labels = [_band_label(a, b) for a, b in pairwise(spec.bins)]
        banded = pd.cut(pd.to_numeric(values, errors="coerce"), spec.bins, right=False, labels=labels)
        return banded.astype(object).where(banded.notna(), MISSING)
    if spec.fairness_groups is not None:
        lookup = {member: group for group, members in spec.fairness_groups.items() for member in members}
        return values.map(lambda v: MISSING if pd.isna(v) else lookup.get(str(v), NOT_ASSESSED))
    return values.astype(object).where(values.notna(), MISSING).astype(str)


def _group_metrics(y: np.ndarray, score: np.ndarray, threshold: float, gate: GateSettings) -> dict[str, Any]:
    positives, n = int(y.sum()), len(y)
    negatives = n - positives
    flagged = score >= threshold
    row: dict[str, Any] = {
        "n": n,
        "positives": positives,
        "prevalence": positives / n if n else math.nan,
        "mean_predicted": float(score.mean()) if n else math.nan,
        "tpr": float(flagged[y == 1].mean()) if positives else math.nan,
        "fpr": float(flagged[y == 0].mean()) if negatives else math.nan,
        "auc": math.nan,
        "auc_se": math.nan,
        "auc_ci95": [math.nan, math.nan],
    }
    row["calibration_gap"] = row["mean_predicted"] - row["prevalence"]
    enough = n >= gate.min_subgroup_size and min(positives, negatives) >= gate.min_subgroup_events
    row["status"] = "ok" if enough else "too_small"
    if positives >= 2 and negatives >= 2:
        auc, se, lo, hi = auc_with_ci(y, score)
        row["auc"], row["auc_se"], row["auc_ci95"] = auc, se, [lo, hi]
    return row


BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20240613  # fixed: the same predictions always give the same intervals


def _replicates(row: dict[str, Any], metric: str, rng: np.random.Generator, samples: int) -> np.ndarray:
    """Bootstrap replicates of one subgroup's metric.

    A rate (TPR, FPR) resampled with replacement from its n patients is exactly Binomial(n, rate)/n, so it is
    drawn directly; an AUC is drawn from its DeLong normal approximation (a parametric bootstrap), which avoids
    re-ranking thousands of scores per replicate.
    """
    if metric == "tpr":
        n = row["positives"]
        return rng.binomial(n, row["tpr"], samples) / n
    if metric == "fpr":
        n = row["n"] - row["positives"]
        return rng.binomial(n, row["fpr"], samples) / n
    if metric == "calibration_gap":  # observed events resampled; the mean prediction moves far less
        n = row["n"]
        return row["mean_predicted"] - rng.binomial(n, row["prevalence"], samples) / n
    return rng.normal(row["auc"], row["auc_se"] if math.isfinite(row["auc_se"]) else 0.0, samples)


def _gap(
    groups: dict[str, dict[str, Any]], metric: str, absolute: bool = False, samples: int = BOOTSTRAP_SAMPLES
) -> dict[str, Any] | None:
    """The largest difference between judged subgroups, with a bootstrap 95% CI of that largest difference.

    Each replicate redraws every subgroup independently (they are disjoint patients) and takes the new
    largest gap, so the interval covers which group is extreme as well as how far apart they are.
    """
    judged = {g: r[metric] for g, r in groups.items() if r["status"] == "ok" and not math.isnan(r[metric])}
    if len(judged) < 2 and not (absolute and judged):
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = np.vstack([_replicates(groups[g], metric, rng, samples) for g in judged])
    if absolute:
        worst = max(judged, key=lambda g: abs(judged[g]))
        gap: dict[str, Any] = {"value": abs(judged[worst]), "worst_group": worst}
        spread = np.abs(draws).max(axis=0)
    else:
        low, high = min(judged, key=judged.get), max(judged, key=judged.get)  # type: ignore[arg-type]
        gap = {"value": judged[high] - judged[low], "lowest_group": low, "highest_group": high}
        spread = draws.max(axis=0) - draws.min(axis=0)
    lo, hi = np.percentile(spread, [2.5, 97.5])
    # The interval always contains the observed gap: a percentile interval of a max can sit above it.
    gap["ci95"] = [float(min(lo, gap["value"])), float(max(hi, gap["value"]))]
    gap["ci_method"] = f"bootstrap, {samples} replicates"
    return gap


def assess_fairness(
    predictions: pd.DataFrame, contract: Contract, threshold: float, gate: GateSettings
) -> dict[str, Any]:
    y = predictions["label"].to_numpy().astype(int)
    score = predictions["score"].to_numpy()
    attributes: dict[str, Any] = {}
    for name in contract.sensitive_columns:
        groups = subgroups(predictions[name], contract.columns[name])
        table: dict[str, dict[str, Any]] = {}
        for group in sorted(groups.unique(), key=str):
            mask = (groups == group).to_numpy()
            if group == NOT_ASSESSED:
                table[group] = {"n": int(mask.sum()), "status": NOT_ASSESSED}
                continue
            table[group] = _group_metrics(y[mask], score[mask], threshold, gate)
        gaps = {
            "auc": _gap(table, "auc"),
            "tpr": _gap(table, "tpr"),
            "fpr": _gap(table, "fpr"),
            "calibration": _gap(table, "calibration_gap", absolute=True),
        }
        too_small = sorted(g for g, r in table.items() if r["status"] == "too_small")
        attributes[name] = {"groups": table, "gaps": gaps, "too_small": too_small}
        if gaps["auc"]:
            log.info("fairness %s: AUC gap %.3f (lowest %s)", name, gaps["auc"]["value"], gaps["auc"]["lowest_group"])
    return {
        "operating_threshold": threshold,
        "min_subgroup_size": gate.min_subgroup_size,
        "min_subgroup_events": gate.min_subgroup_events,
        "attributes": attributes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", default=PROCESSING / "input/predictions")
    parser.add_argument("--evaluation", default=PROCESSING / "input/evaluation/evaluation.json")
    parser.add_argument("--contract", default=PROCESSING / "input/contract")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/fairness")
    parser.add_argument("--min-subgroup-size", type=int, default=GateSettings().min_subgroup_size)
    parser.add_argument("--min-subgroup-events", type=int, default=GateSettings().min_subgroup_events)
    args = parser.parse_args(argv)
    gate = GateSettings(min_subgroup_size=args.min_subgroup_size, min_subgroup_events=args.min_subgroup_events)
    threshold = float(read_json(args.evaluation)["operating_threshold"])
    report = assess_fairness(read_table(args.predictions), load_contract(args.contract), threshold, gate)
    write_json(report, args.output / "fairness.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
