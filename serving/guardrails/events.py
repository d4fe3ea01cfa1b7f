"""EventBridge event patterns (for the lead's Pulumi wiring) and parsers for the events they match.

Shapes are the documented ones: "CloudWatch Alarm State Change" (CloudWatch user guide, "Alarm events and
EventBridge") carries `detail.alarmName`, `detail.state.{value,reason,timestamp}` and `detail.previousState`;
"SageMaker Model Package State Change" (SageMaker developer guide, "Events that SageMaker sends to
EventBridge") carries the package's description fields - ModelPackageArn, ModelPackageGroupName,
ModelPackageVersion, ModelApprovalStatus, ModelPackageStatus, CreationTime, LastModifiedTime - but the documented
sample has no ApprovalDescription, CreatedBy or LastModifiedBy, so the recorder reads those with
DescribeModelPackage. Standard library only: the Lambda functions import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinops.names import ALARM_DETAIL_TYPE, ALARM_SOURCE, alarm_name

PACKAGE_SOURCE, PACKAGE_DETAIL_TYPE = "aws.sagemaker", "SageMaker Model Package State Change"
RECORDED_STATUSES = ("Approved", "Rejected")

# Only decisions reach the recorder. An unfiltered package rule also fires on registration
# (PendingManualApproval); templates that deploy from such a rule deploy unapproved models.
APPROVAL_EVENT_PATTERN: dict[str, Any] = {
    "source": [PACKAGE_SOURCE],
    "detail-type": [PACKAGE_DETAIL_TYPE],
    "detail": {"ModelApprovalStatus": list(RECORDED_STATUSES)},
}


def approval_event_pattern(groups: list[str] | None = None) -> dict[str, Any]:
    """APPROVAL_EVENT_PATTERN, optionally limited to the stack's model package groups."""
    detail: dict[str, Any] = {"ModelApprovalStatus": list(RECORDED_STATUSES)}
    if groups:
        detail["ModelPackageGroupName"] = sorted(groups)
    return {"source": [PACKAGE_SOURCE], "detail-type": [PACKAGE_DETAIL_TYPE], "detail": detail}


def alarm_event_pattern(alarm_name_prefix: str) -> dict[str, Any]:
    """Alarms entering ALARM whose name starts with the prefix (e.g. `clinops-prod-`). The breaker still checks
    the suffix, so an unrelated alarm that shares the prefix is ignored, not obeyed."""
    return {
        "source": [ALARM_SOURCE],
        "detail-type": [ALARM_DETAIL_TYPE],
        "detail": {"alarmName": [{"prefix": alarm_name_prefix}], "state": {"value": ["ALARM"]}},
    }


def retraining_event_pattern(stack: str, models: list[str], signals: tuple[str, ...] = ("drift", "quality")) -> dict:
    """The sustained-drift and quality alarms of the stack's models entering ALARM (exact names, no wildcards)."""
    names = sorted(alarm_name(stack, model, signal) for model in models for signal in signals)
    return {
        "source": [ALARM_SOURCE],
        "detail-type": [ALARM_DETAIL_TYPE],
        "detail": {"alarmName": names, "state": {"value": ["ALARM"]}},
    }


# The circuit breaker's schedule (an EventBridge schedule rule with this constant input): recover an interrupted
# rollback, confirm or fail one in flight, re-judge pending alarms - without any alarm event arriving.
RECONCILE_EVENT: dict[str, str] = {"source": "clinops.circuit-breaker", "action": "reconcile"}
RECONCILE_SCHEDULE = "rate(5 minutes)"


def is_reconcile_event(event: Any) -> bool:
    return isinstance(event, dict) and all(event.get(k) == v for k, v in RECONCILE_EVENT.items())


def parse_time(text: Any) -> datetime | None:
    """CloudWatch writes `2019-10-02T17:04:40.985+0000`, EventBridge `2019-10-02T17:04:40Z`."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AlarmEvent:
    event_id: str
    alarm: str
    state: str
    previous_state: str | None
    reason: str
    changed_at: datetime


def parse_alarm_event(event: Any) -> AlarmEvent | None:
    """None for anything that is not a well-formed alarm state change (it is then ignored, never acted on)."""
    if not isinstance(event, dict) or event.get("detail-type") != ALARM_DETAIL_TYPE:
        return None
    detail = event.get("detail") or {}
    state = detail.get("state") or {}
    changed_at = parse_time(state.get("timestamp")) or parse_time(event.get("time"))
    if not (event.get("id") and detail.get("alarmName") and state.get("value") and changed_at):
        return None
    previous = (detail.get("previousState") or {}).get("value")
    return AlarmEvent(
        event_id=str(event["id"]),
        alarm=str(detail["alarmName"]),
        state=str(state["value"]),
        previous_state=str(previous) if previous else None,
        reason=str(state.get("reason") or "")[:500],
        changed_at=changed_at,
    )


@dataclass(frozen=True)
class PackageEvent:
    event_id: str
    package_arn: str
    group: str
    version: int | None
    status: str
    event_time: datetime | None


def parse_package_event(event: Any) -> PackageEvent | None:
    if not isinstance(event, dict) or event.get("detail-type") != PACKAGE_DETAIL_TYPE:
        return None
    detail = event.get("detail") or {}
    arn, status = detail.get("ModelPackageArn"), detail.get("ModelApprovalStatus")
    if not (event.get("id") and arn and status):
        return None
    version = detail.get("ModelPackageVersion")
    return PackageEvent(
        event_id=str(event["id"]),
        package_arn=str(arn),
        group=str(detail.get("ModelPackageGroupName") or ""),
        version=int(version) if isinstance(version, int | str) and str(version).isdigit() else None,
        status=str(status),
        event_time=parse_time(event.get("time")),
    )
