"""Step 6 - decide: does the candidate meet the gates, so a human may review it for approval?

Gates (from `GateSettings`): test AUC at least `min_auc`; for every sensitive attribute, the AUC gap between
its subgroups at most `max_subgroup_auc_gap`; every subgroup large enough to judge; and, when an approved
model exists, test AUC no more than `max_regression` below it. The verdict is `PendingManualApproval` (the
only status this pipeline ever registers), `Rejected` (a gate failed) or `Inconclusive` (a gate could not be
judged). A pass never approves anything: approval stays a human decision in the registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.jobio import PROCESSING, read_json, write_json
from pipelines.settings import GateSettings

log = logging.getLogger("clinops.pipeline.decide")
PENDING, REJECTED, INCONCLUSIVE = "PendingManualApproval", "Rejected", "Inconclusive"


@dataclass(frozen=True)
class ApprovedReference:
    """The model currently approved for this use, and its AUC (ideally re-measured on this test split)."""

    version: str
    auc: float
    source: str
    evaluated_on: str


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: could not be judged
    value: float | None
    limit: float | None
    message: str


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
                )
            )
        gap = result["gaps"]["auc"]
        if gap is None:
            checks.append(
                Check(
                    f"subgroup_auc_gap:{attribute}",
                    None,
                    None,
                    gate.max_subgroup_auc_gap,
                    f"{attribute}: fewer than two subgroups large enough to compare AUC",
                )
            )
            continue
        ok = gap["value"] <= gate.max_subgroup_auc_gap
        low, high = gap["lowest_group"], gap["highest_group"]
        checks.append(
            Check(
                f"subgroup_auc_gap:{attribute}",
                ok,
                gap["value"],
                gate.max_subgroup_auc_gap,
                f"{attribute}: AUC gap {gap['value']:.3f} (95% CI {gap['ci95'][0]:.3f} to "
                f"{gap['ci95'][1]:.3f}) between {high} "
                f"({result['groups'][high]['auc']:.3f}) and {low} ({result['groups'][low]['auc']:.3f}) "
                f"{'within' if ok else 'exceeds'} the maximum {gate.max_subgroup_auc_gap:.2f}",
            )
        )
    return checks


def decide(
    evaluation: dict[str, Any], fairness: dict[str, Any], gate: GateSettings, approved: ApprovedReference | None = None
) -> dict[str, Any]:
    checks = _auc_checks(evaluation, gate, approved) + _fairness_checks(fairness, gate)
    failed = [c for c in checks if c.passed is False]
    unjudged = [c for c in checks if c.passed is None]
    verdict = REJECTED if failed else INCONCLUSIVE if unjudged else PENDING
    reasons = [c.message for c in failed + unjudged]
    log.info("decision: %s (%d checks, %d failed, %d not judged)", verdict, len(checks), len(failed), len(unjudged))
    return {
        "verdict": verdict,
        "register": verdict == PENDING,
        "approval_status": PENDING if verdict == PENDING else None,
        "reasons": reasons,
        "summary": "; ".join(reasons) if reasons else "all gates passed",
        "checks": [asdict(c) for c in checks],
        "gate": gate.model_dump(),
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
    for field in ("min_auc", "max_subgroup_auc_gap", "max_regression"):
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
    decision = decide(read_json(args.evaluation), read_json(args.fairness), gate, approved)
    write_json(decision, args.output / "decision.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
