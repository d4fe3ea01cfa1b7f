"""Step 6 - decide: does the candidate meet the gates, so a human may review it for approval?

Gates (from `GateSettings`): test AUC at least `min_auc`, and no more than `max_comparator_shortfall` below
the simple comparator trained beside it; for every sensitive attribute, the gaps between its subgroups in AUC,
sensitivity (TPR, equal opportunity) and false-alarm rate (FPR) within their limits; every subgroup large
enough to judge; and, when an approved model exists, test AUC no more than `max_regression` below it.

A fairness gap is judged with its 95% CI: the CI entirely within the limit passes; a gap above the limit
fails; a gap within the limit whose CI reaches past it is not a pass - it needs a named reviewer's sign-off
(outcome `needs sign-off`, listed in `signoff_required` and on the registry entry). The verdict is
`PendingManualApproval` (the only status this pipeline ever registers), `Rejected` (a gate failed) or
`Inconclusive` (a gate could not be judged). A pass never approves anything: approval stays a human decision.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.jobio import PROCESSING, read_json, write_json
from pipelines.settings import INCONCLUSIVE, PENDING, REJECTED, GateSettings, relaxed_limits

log = logging.getLogger("clinops.pipeline.decide")


@dataclass(frozen=True)
class ApprovedReference:
    """The model currently approved for this use, and its AUC (ideally re-measured on this test split)."""

    version: str
    auc: float
    source: str
    evaluated_on: str


PASS, FAIL, NOT_JUDGED, NEEDS_SIGNOFF = "pass", "fail", "not judged", "needs sign-off"
# Fairness gaps judged, with the gate limit that holds each and how the card names it.
GAP_LIMITS = {
    "auc": ("max_subgroup_auc_gap", "AUC"),
    "tpr": ("max_subgroup_tpr_gap", "sensitivity (TPR)"),
    "fpr": ("max_subgroup_fpr_gap", "false-alarm rate (FPR)"),
}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: could not be judged, or needs a reviewer's sign-off (see outcome)
    value: float | None
    limit: float | None
    message: str
    outcome: str = ""
    attribute: str | None = None
    metric: str | None = None
    groups: tuple[str, ...] = ()  # the subgroups this check implicates (those beyond the limit)

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", PASS if self.passed else FAIL if self.passed is False else NOT_JUDGED)


def _auc_checks(evaluation: dict[str, Any], gate: GateSettings, approved: ApprovedReference | None) -> list[Check]:
    auc = float(evaluation["candidate"]["auc"])
    checks = [
        Check(
            "min_auc",
            auc >= gate.min_auc,
            auc,
            gate.min_auc,
            f"test AUC {auc:.3f} {'meets' if auc >= gate.min_auc else 'is below'} the minimum {gate.min_auc:.2f}",
        )
    ]
    comparator = evaluation.get("comparator", {}).get("auc")
    if comparator is not None:
        shortfall = float(comparator) - auc
        ok = shortfall <= gate.max_comparator_shortfall
        estimator = evaluation["comparator"].get("estimator", "comparator")
        relation = (
            f"{-shortfall:.3f} higher than"
            if shortfall < 0
            else f"{shortfall:.3f} LOWER than"
            if shortfall > 0
            else "equal to"
        )
        checks.append(
            Check(
                "beats_comparator",
                ok,
                auc,
                float(comparator) - gate.max_comparator_shortfall,
                f"test AUC {auc:.3f} is {relation} the {estimator} comparator trained in this run "
                f"({float(comparator):.3f})"
                + (
                    ""
                    if ok
                    else f"; more than the {gate.max_comparator_shortfall:.2f} allowed: refusing to register the "
                    "worse model (ship the simpler one or improve the candidate)"
                ),
            )
        )
    if approved is not None:
        floor = approved.auc - gate.max_regression
        ok = auc >= floor
        checks.append(
            Check(
                "no_regression",
                ok,
                auc,
                floor,
                f"test AUC {auc:.3f} vs approved {approved.version} at {approved.auc:.3f} "
                f"({approved.evaluated_on}): {'within' if ok else 'worse than'} the "
                f"{gate.max_regression:.2f} tolerance",
            )
        )
    return checks


def _beyond(groups: dict[str, Any], metric: str, limit: float) -> tuple[str, ...]:
    """Judged subgroups further than `limit` from some other judged subgroup on `metric`."""
    values = {
        g: r[metric]
        for g, r in groups.items()
        if r.get("status") == "ok" and isinstance(r.get(metric), float) and not math.isnan(r[metric])
    }
    if not values:
        return ()
    low, high = min(values.values()), max(values.values())
    return tuple(sorted(g for g, v in values.items() if max(v - low, high - v) > limit))


def _gap_check(attribute: str, result: dict[str, Any], metric: str, gate: GateSettings) -> Check:
    limit_name, label = GAP_LIMITS[metric]
    limit = float(getattr(gate, limit_name))
    name = f"subgroup_{metric}_gap:{attribute}"
    gap = result["gaps"].get(metric)
    if gap is None:
        return Check(
            name,
            None,
            None,
            limit,
            f"{attribute}: fewer than two subgroups large enough to compare {label}",
            attribute=attribute,
            metric=metric,
        )
    groups = result["groups"]
    low, high = gap["lowest_group"], gap["highest_group"]
    ci_lo, ci_hi = gap.get("ci95", [gap["value"], gap["value"]])
    between = (
        f"{attribute}: {label} gap {gap['value']:.3f} (95% CI {ci_lo:.3f} to {ci_hi:.3f}) between "
        f"{high} ({groups[high][metric]:.3f}) and {low} ({groups[low][metric]:.3f})"
    )
    if gap["value"] > limit:
        return Check(
            name,
            False,
            gap["value"],
            limit,
            f"{between} exceeds the maximum {limit:.2f} ({limit_name})",
            attribute=attribute,
            metric=metric,
            groups=_beyond(groups, metric, limit),
        )
    if ci_hi > limit:
        return Check(
            name,
            None,
            gap["value"],
            limit,
            f"{between} is within the maximum {limit:.2f} ({limit_name}) but its CI reaches past it: "
            "needs a named reviewer's sign-off",
            outcome=NEEDS_SIGNOFF,
            attribute=attribute,
            metric=metric,
            groups=(low, high),
        )
    return Check(
        name, True, gap["value"], limit, f"{between} within the maximum {limit:.2f}", attribute=attribute, metric=metric
    )


def _fairness_checks(fairness: dict[str, Any], gate: GateSettings) -> list[Check]:
    checks = []
    for attribute, result in fairness["attributes"].items():
        for group in result["too_small"]:
            row = result["groups"][group]
            events = min(row["positives"], row["n"] - row["positives"])
            checks.append(
                Check(
                    f"subgroup_size:{attribute}",
                    None,
                    float(row["n"]),
                    float(gate.min_subgroup_size),
                    f"subgroup {attribute}={group} has {row['n']} test rows and {events} minority-class "
                    f"events (needs {gate.min_subgroup_size} rows and {gate.min_subgroup_events} events): "
                    "too small to judge; add data or pool it via fairness_groups in the contract",
                    attribute=attribute,
                    groups=(group,),
                )
            )
        for metric in GAP_LIMITS:
            if metric in result["gaps"]:
                checks.append(_gap_check(attribute, result, metric, gate))
    return checks


def decide(
    evaluation: dict[str, Any],
    fairness: dict[str, Any],
    gate: GateSettings,
    approved: ApprovedReference | None = None,
    relaxed_by: str | None = None,
) -> dict[str, Any]:
    """The verdict. `relaxed_by` names who loosened any gate below the platform default (recorded, never assumed)."""
    checks = _auc_checks(evaluation, gate, approved) + _fairness_checks(fairness, gate)
    failed = [c for c in checks if c.outcome == FAIL]
    unjudged = [c for c in checks if c.outcome == NOT_JUDGED]
    signoff = [c for c in checks if c.outcome == NEEDS_SIGNOFF]
    verdict = REJECTED if failed else INCONCLUSIVE if unjudged else PENDING
    reasons = [c.message for c in failed + unjudged]
    relaxed = relaxed_limits(gate)
    log.info(
        "decision: %s (%d checks, %d failed, %d not judged, %d need sign-off)",
        verdict,
        len(checks),
        len(failed),
        len(unjudged),
        len(signoff),
    )
    summary = "; ".join(reasons) if reasons else "all gates passed"
    if verdict == PENDING and signoff:
        summary = f"gates passed; {len(signoff)} fairness gap(s) need a named reviewer's sign-off before approval"
    return {
        "verdict": verdict,
        "register": verdict == PENDING,
        "approval_status": PENDING if verdict == PENDING else None,
        "reasons": reasons,
        "signoff_required": [c.message for c in signoff],
        "summary": summary,
        "checks": [asdict(c) for c in checks],
        "gate": gate.model_dump(),
        "relaxed_limits": relaxed,
        "relaxed_by": (relaxed_by or "an unnamed user") if relaxed else None,
        "approved_reference": asdict(approved) if approved else None,
    }


def approved_from_sagemaker(group: str, sagemaker: Any, s3: Any) -> ApprovedReference | None:
    """The newest Approved package in `group`, with the AUC recorded in its model-quality statistics."""
    listing = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    if not listing["ModelPackageSummaryList"]:
        return None
    arn = listing["ModelPackageSummaryList"][0]["ModelPackageArn"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    stats = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    auc = float(stats["binary_classification_metrics"]["auc"]["value"])
    return ApprovedReference(version=arn, auc=auc, source="sagemaker", evaluated_on="its own test split (recorded)")


def main(argv: list[str] | None = None) -> int:
    defaults = GateSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluation", default=PROCESSING / "input/evaluation/evaluation.json")
    parser.add_argument("--fairness", default=PROCESSING / "input/fairness")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/decision")
    parser.add_argument("--approved-metrics", type=Path, help="JSON {version, auc} of the approved model")
    parser.add_argument("--model-package-group", help="look the approved model up in this SageMaker group")
    parser.add_argument("--relaxed-by", help="who loosened a gate below its default (recorded on the card)")
    for field in (
        "min_auc",
        "max_subgroup_auc_gap",
        "max_subgroup_tpr_gap",
        "max_subgroup_fpr_gap",
        "max_comparator_shortfall",
        "max_regression",
    ):
        parser.add_argument(f"--{field.replace('_', '-')}", type=float, default=getattr(defaults, field))
    for field in ("min_subgroup_size", "min_subgroup_events"):
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=getattr(defaults, field))
    args = parser.parse_args(argv)
    gate = GateSettings(**{f: getattr(args, f) for f in GateSettings.model_fields})
    approved = None
    if args.approved_metrics:
        recorded = read_json(args.approved_metrics)
        approved = ApprovedReference(
            str(recorded["version"]), float(recorded["auc"]), "file", "its own test split (recorded)"
        )
    elif args.model_package_group:
        import boto3  # only the cloud path needs AWS

        approved = approved_from_sagemaker(args.model_package_group, boto3.client("sagemaker"), boto3.client("s3"))
    decision = decide(read_json(args.evaluation), read_json(args.fairness), gate, approved, args.relaxed_by)
    write_json(decision, args.output / "decision.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
