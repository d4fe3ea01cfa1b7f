"""Is this model package releasable to this stack? Registry status, identities and metrics, in that order.

Everything is read from one `DescribeModelPackage` (the registry lives in the build account; staging and prod
read it cross-account through the group's resource policy, see `infra/registry.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from clinops.exitcodes import PackageNotReleasable, UnusableInput
from clinops.identity import Identity, check_segregation
from clinops.models import PACKAGE_ARN_RE, ModelConfig
from serving.release.aws import StackAws, error_code, error_message
from serving.release.quality import PackageMetrics, check_quality, read_metrics

_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound", "ResourceNotFoundException"})


@dataclass(frozen=True)
class PackageReview:
    arn: str
    version: int
    author: Identity
    approver: Identity
    metrics: PackageMetrics
    approval_description: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_evidence(self) -> dict[str, Any]:
        return {
            "author": self.author.as_evidence(),
            "approver": self.approver.as_evidence(),
            "approval_description": self.approval_description,
            "metrics": self.metrics.as_evidence(),
        }


def parse_package_arn(arn: str, model: ModelConfig) -> int:
    match = PACKAGE_ARN_RE.match(arn)
    if not match:
        raise UnusableInput(
            f"'{arn}' is not a versioned model package ARN; fix: arn:aws:sagemaker:REGION:ACCOUNT:model-package/"
            f"{model.name}/VERSION"
        )
    if match.group(3) != model.name:
        raise UnusableInput(f"{arn} belongs to group '{match.group(3)}', not model '{model.name}'")
    return int(match.group(4))


def describe_package(aws: StackAws, arn: str) -> dict[str, Any]:
    try:
        return aws.call("sagemaker", "describe_model_package", ModelPackageName=arn)
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND_CODES:
            raise PackageNotReleasable(
                f"{arn} was not found in the registry ({error_message(exc) or error_code(exc)}); fix: check the "
                "version, and that this account may read the registry"
            ) from None
        raise


def review_package(
    aws: StackAws,
    arn: str,
    model: ModelConfig,
    *,
    approvers: list[str],
    authors: list[str],
) -> PackageReview:
    """Raise PackageNotReleasable, SegregationOfDuties or QualityBelowThreshold; else the facts to record."""
    version = parse_package_arn(arn, model)
    package = describe_package(aws, arn)
    status = package.get("ModelApprovalStatus")
    if package.get("ModelPackageGroupName") not in (None, model.name):
        raise PackageNotReleasable(f"{arn} is registered in group {package['ModelPackageGroupName']}, not {model.name}")
    if package.get("ModelPackageStatus") not in (None, "Completed"):
        raise PackageNotReleasable(f"{arn} is {package['ModelPackageStatus']}, not Completed; wait or re-register")
    if status == "Rejected":
        raise PackageNotReleasable(
            f"{arn} was Rejected by clinical review ({package.get('ApprovalDescription') or 'no reason given'}); "
            "it can never be released"
        )
    if status != "Approved":
        raise PackageNotReleasable(
            f"{arn} is {status or 'without an approval status'}, not Approved; fix: a clinical reviewer approves "
            "it in the registry first"
        )
    author, approver = check_segregation(package, approvers, authors)
    metrics = read_metrics(package, aws)
    check_quality(arn, metrics, model.quality)
    return PackageReview(arn, version, author, approver, metrics, package.get("ApprovalDescription"))
