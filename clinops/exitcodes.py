"""One exit-code table for every clinops command and step entry point, one meaning per code.

    0  OK                       done; the verdict passed
    1  FAILED                   a verdict or mandatory check failed: the gate, drift or decay detected, a run
                                rejected, the evidence log tampered, a drill that missed its objective
    2  UNUSABLE_INPUT           unknown stack or model, malformed ARN, flag or plan, unreadable file or capture
    3  PACKAGE_NOT_RELEASABLE   release: the package is missing, not Approved (pending or rejected), or of another group
    4  SEGREGATION_OF_DUTIES    release: approver = author, an unknown identity, or an approver who is not one
    5  QUALITY_BELOW_THRESHOLD  release: registered metrics below the stack's `quality` thresholds, or missing
    6  PROMOTION_ORDER          release: not verified in the previous environment, or a prod canary without a
                                passing shadow report
    7  GATE_FAILED              release: the policy gate failed on the pinned configuration (the stack file is restored)
    8  ENDPOINT_BUSY            the endpoint is creating, updating or rolling back: try again later
    9  AWS_UNAVAILABLE          AWS refused or kept failing after bounded retries (throttling, access denied)
    10 ROLLED_BACK              verify: the endpoint does not serve the pinned configuration (rollback or drift)
    11 DEPLOYMENT_UNHEALTHY     verify: alarms, data capture, variants or status are not as configured
    12 DEPLOY_FAILED            release: `pulumi up` failed (the stack file is restored)
    13 SHADOW_FAILED            shadow report: the candidate disagrees with production beyond the criteria
    14 SHADOW_INCONCLUSIVE      shadow report: too few matched requests, or operational metrics unavailable
    15 EVIDENCE_UNAVAILABLE     the evidence log could not be read or written (nothing was released)
    16 RELEASES_FROZEN          release: the model's exhausted-error-budget freeze alarm is in ALARM (SLO policy)
    17 NOT_DEPLOYED             verify: the stack was never deployed (no deployed pin, no endpoint): nothing to
                                verify yet, and not a rollback
    70 CRASH                    an unexpected error (a bug), never a verdict: `clinops` maps uncaught exceptions here

A release refusal (2-9, 16, and 15 before `pulumi up`) changes nothing: no stack file edit survives and nothing is
deployed. After a successful `pulumi up`, 15 means the deployment stands but its second evidence entry could not
be written. Each command's `--help` lists the codes it can end with (`epilog`).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
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
    RELEASES_FROZEN = 16
    NOT_DEPLOYED = 17
    CRASH = 70  # sysexits.h EX_SOFTWARE: Python's own traceback exit (1) would read as "a verdict failed"


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "done; the verdict passed",
    ExitCode.FAILED: "a verdict or mandatory check failed (gate, drift, decay, rejected run, tampered log, drill)",
    ExitCode.UNUSABLE_INPUT: "unusable input: unknown stack or model, malformed flag, ARN, plan, file or capture",
    ExitCode.PACKAGE_NOT_RELEASABLE: "the package is missing, not Approved, or of another group",
    ExitCode.SEGREGATION_OF_DUTIES: "approver = author, an unknown identity, or an approver who is not one",
    ExitCode.QUALITY_BELOW_THRESHOLD: "registered metrics below the stack's quality thresholds, or missing",
    ExitCode.PROMOTION_ORDER: "not verified in the previous environment, or a prod canary without a shadow report",
    ExitCode.GATE_FAILED: "the policy gate failed on the pinned configuration (the stack file is restored)",
    ExitCode.ENDPOINT_BUSY: "the endpoint is creating, updating or rolling back: try again later",
    ExitCode.AWS_UNAVAILABLE: "AWS refused or kept failing after bounded retries",
    ExitCode.ROLLED_BACK: "the endpoint does not serve the pinned configuration (rollback or drift)",
    ExitCode.DEPLOYMENT_UNHEALTHY: "alarms, data capture, variants or status are not as configured",
    ExitCode.DEPLOY_FAILED: "`pulumi up` failed (the stack file is restored)",
    ExitCode.SHADOW_FAILED: "the candidate disagrees with production beyond the criteria",
    ExitCode.SHADOW_INCONCLUSIVE: "too few matched requests, or operational metrics unavailable",
    ExitCode.EVIDENCE_UNAVAILABLE: "the evidence log could not be read or written",
    ExitCode.RELEASES_FROZEN: "releases are frozen: the model's error budget is exhausted (freeze alarm in ALARM)",
    ExitCode.NOT_DEPLOYED: "the stack was never deployed (no deployed pin, no endpoint): release it first",
    ExitCode.CRASH: "an unexpected error (a bug): report it with the traceback printed above",
}


def epilog(*codes: ExitCode) -> str:
    """The exit codes a command can end with, for its --help (OK, FAILED, UNUSABLE_INPUT and CRASH always)."""
    shown = sorted({ExitCode.OK, ExitCode.FAILED, ExitCode.UNUSABLE_INPUT, *codes, ExitCode.CRASH})
    return "Exit codes: " + "; ".join(f"{int(code)} {MEANING[code]}" for code in shown) + "."


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


class ReleasesFrozen(ReleaseError):
    exit_code = ExitCode.RELEASES_FROZEN
