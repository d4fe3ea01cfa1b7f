"""Every way a release, verify or shadow report can end, as an exit code a CI job can branch on.

    0  OK                       released / verified / shadow report passed
    1  (reserved)               an unexpected crash (a bug): never used on purpose
    2  UNUSABLE_INPUT           unknown stack or model, malformed ARN or flag, unreadable file or capture
    3  PACKAGE_NOT_RELEASABLE   the package is missing, not Approved (pending or rejected), or of another group
    4  SEGREGATION_OF_DUTIES    approver = author, an unknown identity, or an approver who is not one
    5  QUALITY_BELOW_THRESHOLD  registered metrics below the stack's `quality` thresholds, or missing
    6  PROMOTION_ORDER          not verified in the previous environment, or a prod canary without a passing
                                shadow report
    7  GATE_FAILED              the policy gate failed on the pinned configuration (the stack file is restored)
    8  ENDPOINT_BUSY            the endpoint is creating, updating or rolling back: try again later
    9  AWS_UNAVAILABLE          AWS refused or kept failing after bounded retries (throttling, access denied)
    10 ROLLED_BACK              verify: the endpoint does not serve the pinned configuration (rollback or drift)
    11 DEPLOYMENT_UNHEALTHY     verify: alarms, data capture, variants or status are not as configured
    12 DEPLOY_FAILED            `pulumi up` failed (the stack file is restored)
    13 SHADOW_FAILED            shadow report: the candidate disagrees with production beyond the criteria
    14 SHADOW_INCONCLUSIVE      shadow report: too few matched requests, or operational metrics unavailable
    15 EVIDENCE_UNAVAILABLE     the evidence log could not be read or written (nothing was released)

A refusal (2-9, and 15 before `pulumi up`) changes nothing: no stack file edit survives and nothing is deployed.
After a successful `pulumi up`, 15 means the deployment stands but its second evidence entry could not be written.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    UNUSABLE_INPUT = 2
    PACKAGE_NOT_RELEASABLE = 3
    SEGREGATION_OF_DUTIES = 4
    QUALITY_BELOW_THRESHOLD = 5
    PROMOTION_ORDER = 6
    GATE_FAILED = 7
    ENDPOINT_BUSY = 8
    AWS_UNAVAILABLE = 9
    ROLLED_BACK = 10
    DEPLOYMENT_UNHEALTHY = 11
    DEPLOY_FAILED = 12
    SHADOW_FAILED = 13
    SHADOW_INCONCLUSIVE = 14
    EVIDENCE_UNAVAILABLE = 15


class ReleaseError(Exception):
    """A refusal or failure with its exit code; `details` go to the evidence entry (never patient data)."""

    exit_code: ExitCode = ExitCode.UNUSABLE_INPUT

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class UnusableInput(ReleaseError):
    exit_code = ExitCode.UNUSABLE_INPUT


class PackageNotReleasable(ReleaseError):
    exit_code = ExitCode.PACKAGE_NOT_RELEASABLE


class SegregationOfDuties(ReleaseError):
    exit_code = ExitCode.SEGREGATION_OF_DUTIES


class QualityBelowThreshold(ReleaseError):
    exit_code = ExitCode.QUALITY_BELOW_THRESHOLD


class PromotionOrder(ReleaseError):
    exit_code = ExitCode.PROMOTION_ORDER


class GateFailed(ReleaseError):
    exit_code = ExitCode.GATE_FAILED


class EndpointBusy(ReleaseError):
    exit_code = ExitCode.ENDPOINT_BUSY


class AwsUnavailable(ReleaseError):
    exit_code = ExitCode.AWS_UNAVAILABLE


class DeployFailed(ReleaseError):
    exit_code = ExitCode.DEPLOY_FAILED


class EvidenceUnavailable(ReleaseError):
    exit_code = ExitCode.EVIDENCE_UNAVAILABLE
