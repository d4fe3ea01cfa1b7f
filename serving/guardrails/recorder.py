"""Approval recorder (Lambda): every Approved or Rejected decision on a model package becomes an `approval` evidence
entry - package, version, status, approver identity, the approval description as justification, and time.

Fed by an EventBridge rule with `APPROVAL_EVENT_PATTERN` (filtered to Approved and Rejected). The event does not
carry who decided or why, so the recorder reads the package (DescribeModelPackage: LastModifiedBy,
ApprovalDescription, CreatedBy) and, when the package names the pipeline execution that built it, who started that
execution (DescribePipelineExecution: CreatedBy).

Segregation of duties is judged by the release code's rule (`clinops.identity.check_segregation`, the
same one `clinops release` applies), against the package's creator and against whoever started the pipeline that
built it - so an automation approving what it registered, or one person through two roles, is caught.

Refusals, each alerted on the SNS topic and never recorded as an approval:
- segregation of duties: the approver is (or cannot be proven not to be) the author;
- unattributable: the package does not say who decided;
- superseded: the package's decision changed again before this event was processed (the newer event records the
  current decision; CloudTrail holds the older approver).
`clinops release` refuses such a package on its own (same rule, same DescribeModelPackage).

Duplicates: SageMaker may send several events for one change, with different ids, so a decision is identified by
(package, status, LastModifiedTime). Its claim is an SSM parameter created with `Overwrite=False` - atomic, so of
concurrent duplicates exactly one records; the claim is released if the evidence cannot be written, so the retry
records it. Standard library + boto3, plus `serving/release/{identity,errors}.py` (standard library only).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from clinops.exitcodes import SegregationOfDuties
from clinops.identity import Identity, check_segregation, parse_user_context
from clinops.names import package_group, package_version, parameter
from serving.guardrails.events import RECORDED_STATUSES, iso, parse_package_event
from serving.guardrails.outputs import EvidenceSink, log_line, publish

_PIPELINE_EXECUTION = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:pipeline/[^/]+/execution/[^/]+$")
_MODEL_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


@dataclass(frozen=True)
class RecorderSettings:
    stack: str  # whose evidence log receives approvals (the registry's stack)
    topic_arn: str
    actor: str  # the recorder's role ARN, kept in details as `recorded_by`

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RecorderSettings:
        return cls(stack=env["STACK"], topic_arn=env["TOPIC_ARN"], actor=env["ACTOR_ARN"])


@dataclass(frozen=True)
class RecordResult:
    outcome: str  # recorded | duplicate | ignored | refused-segregation | refused-unattributed | superseded
    reason: str
    event_id: str | None = None
    package_arn: str | None = None
    status: str | None = None
    approver: str | None = None
    evidence_seq: int | None = None
    alert_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def decision_claim_parameter(stack: str, model: str, version: int, status: str, decided_at: datetime) -> str:
    stamp = int(decided_at.timestamp() * 1000)
    return parameter(stack, model, f"approval-records/v{version}-{status.lower()}-{stamp}")


def handle_package_event(
    event: Mapping[str, Any],
    sagemaker: Any,
    ssm: Any,
    sns: Any,
    evidence: EvidenceSink,
    clock: Callable[[], datetime],
    settings: RecorderSettings,
) -> RecordResult:
    parsed = parse_package_event(event)
    if parsed is None:
        return _done(RecordResult("ignored", "not a model package state change"), sns, settings)
    base = RecordResult("ignored", "", parsed.event_id, parsed.package_arn, parsed.status)
    if parsed.status not in RECORDED_STATUSES:
        return _done(replace(base, reason=f"status {parsed.status} is not a decision"), sns, settings)
    try:
        model, version = package_group(parsed.package_arn), package_version(parsed.package_arn)
    except ValueError:
        return _done(replace(base, reason="not a versioned model package of a group"), sns, settings)
    if not _MODEL_SLUG.match(model):
        return _done(replace(base, reason=f"group {model} is not a clinops model"), sns, settings)

    package = sagemaker.describe_model_package(ModelPackageName=parsed.package_arn)
    if package.get("ModelApprovalStatus") != parsed.status:
        why = (
            f"the package is {package.get('ModelApprovalStatus')} now: this {parsed.status} decision was superseded "
            "before it could be read (CloudTrail UpdateModelPackage holds its approver)"
        )
        return _done(replace(base, outcome="superseded", reason=why), sns, settings)
    decided_at = package.get("LastModifiedTime") or package["CreationTime"]
    approver = parse_user_context(package.get("LastModifiedBy"))
    if approver is None:
        why = "the package does not say who decided (no LastModifiedBy identity): not recorded as a decision"
        return _done(replace(base, outcome="refused-unattributed", reason=why), sns, settings)
    base = replace(base, approver=actor_of(approver))
    authors = _authors(sagemaker, package)
    if parsed.status == "Approved":
        for role, author in authors.items():
            try:  # the release code's rule, applied to each author in turn
                check_segregation({**package, "CreatedBy": author})
            except SegregationOfDuties as exc:
                why = f"segregation of duties (package {role}): {exc.message}"
                return _done(replace(base, outcome="refused-segregation", reason=why), sns, settings)

    claim = decision_claim_parameter(settings.stack, model, version, parsed.status, decided_at)
    if not _claim(ssm, claim, parsed.event_id, clock):
        return _done(replace(base, outcome="duplicate", reason=f"decision already recorded ({claim})"), sns, settings)
    justification = (package.get("ApprovalDescription") or "").strip()
    try:
        entry = evidence.append(
            "approval",
            model=model,
            model_version=version,
            package_arn=parsed.package_arn,
            actor=actor_of(approver),
            reason=justification if len(justification) >= 3 else f"{parsed.status} without a justification",
            details={
                "status": parsed.status,
                "approver": approver.as_evidence(),
                "approver_role": approver.role,
                "justification": justification or None,
                "decided_at": iso(decided_at),
                # registration -> approval -> production is the release cycle time `clinops scorecard` reports
                "registered_at": iso(created) if isinstance(created := package.get("CreationTime"), datetime) else None,
                "authors": {role: _label(author) for role, author in authors.items()},
                "event_id": parsed.event_id,
                "recorded_by": settings.actor,
            },
        )
    except Exception:
        ssm.delete_parameter(Name=claim)  # let EventBridge's retry record it
        raise
    ssm.put_parameter(
        Name=claim, Value=json.dumps({"event_id": parsed.event_id, "seq": entry.seq}), Type="String", Overwrite=True
    )
    result = replace(
        base, outcome="recorded", reason=f"{parsed.status} by {approver.describe()}", evidence_seq=entry.seq
    )
    if not justification:
        result = replace(result, reason=result.reason + " without a justification")
    return _done(result, sns, settings, alert=not justification)


def actor_of(identity: Identity) -> str:
    """The evidence actor: the IAM/STS ARN, else the Studio user as `sagemaker-studio:DOMAIN/PROFILE`."""
    return identity.arn or f"sagemaker-studio:{identity.studio_profile}"


def _label(context: Mapping[str, Any]) -> str:
    identity = parse_user_context(dict(context))
    return actor_of(identity) if identity else "unknown"


def _authors(sagemaker: Any, package: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """UserContexts of the package's creator and, when a pipeline built it, of whoever started that execution.
    A missing creator stays in (as {}), so the segregation rule refuses what it cannot prove."""
    authors: dict[str, dict[str, Any]] = {"creator": dict(package.get("CreatedBy") or {})}
    generated_by = (package.get("MetadataProperties") or {}).get("GeneratedBy") or ""
    if _PIPELINE_EXECUTION.match(generated_by):
        try:
            execution = sagemaker.describe_pipeline_execution(PipelineExecutionArn=generated_by)
        except ClientError:
            return authors  # gone or unreadable: the creator check still stands
        if execution.get("CreatedBy"):
            authors["pipeline-starter"] = dict(execution["CreatedBy"])
    return authors


def _claim(ssm: Any, name: str, event_id: str, clock: Callable[[], datetime]) -> bool:
    try:
        ssm.put_parameter(
            Name=name,
            Value=json.dumps({"event_id": event_id, "claimed_at": iso(clock())}),
            Type="String",
            Overwrite=False,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterAlreadyExists":
            return False
        raise
    return True


def _done(result: RecordResult, sns: Any, settings: RecorderSettings, *, alert: bool | None = None) -> RecordResult:
    if alert or (alert is None and result.outcome.startswith(("refused", "superseded"))):
        subject = f"[clinops {settings.stack}] approval {result.outcome}: {result.package_arn or ''}"
        error = publish(sns, settings.topic_arn, subject, {"stack": settings.stack, **result.as_dict()})
        result = replace(result, alert_error=error)
    log_line("approval-recorder", {"stack": settings.stack, **result.as_dict()})
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # pragma: no cover - Lambda entry point
    import boto3

    from serving.guardrails.outputs import LazyEvidence, s3_evidence_from_env

    settings = RecorderSettings.from_env(os.environ)
    result = handle_package_event(
        event,
        boto3.client("sagemaker"),
        boto3.client("ssm"),
        boto3.client("sns"),
        LazyEvidence(lambda: s3_evidence_from_env(settings.stack)),
        lambda: datetime.now(UTC),
        settings,
    )
    if result.alert_error:
        raise RuntimeError(f"approval {result.outcome}: alert not delivered: {result.alert_error}")
    return result.as_dict()
