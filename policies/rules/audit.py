"""Audit controls: who touched PHI is recorded, tamper-evident, encrypted and kept for as long as required."""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyResource

from policies.controls import ACTIVITY_REVIEW, AUDIT, INTEGRITY
from policies.rules.base import KMS_KEY_TYPES, UNKNOWN, Findings, StackView, as_list, dig, rule

TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKET = "aws:s3/bucket:Bucket"
OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
S3_OBJECT = "AWS::S3::Object"


@rule(
    id="CLIN-AUD-001",
    title="CloudTrail is multi-region, validated and KMS-encrypted",
    severity="high",
    controls=(AUDIT, INTEGRITY),
    reads=KMS_KEY_TYPES,
    types=(TRAIL,),
    fix="Set is_multi_region_trail=True, enable_log_file_validation=True and kms_key_id=<a key of this stack>.arn.",
)
def trail_integrity(stack: StackView, findings: Findings) -> None:
    for trail in stack.of_type(TRAIL):
        props = stack.props(trail)
        if props.get("isMultiRegionTrail") is not True:
            findings.fail(trail, f"trail '{trail.name}' records one region only: activity elsewhere goes unseen")
        if props.get("enableLogFileValidation") is not True:
            findings.fail(trail, f"trail '{trail.name}' has log-file validation off, so tampering is undetectable")
        if props.get("enableLogging") is False:
            findings.fail(trail, f"trail '{trail.name}' has logging turned off")
        if not props.get("kmsKeyId") or not stack.uses_stack_key(trail, "kmsKeyId"):
            findings.fail(trail, f"trail '{trail.name}' is not encrypted with a KMS key declared in this stack")


def _basic_selector_reads_and_writes_objects(selector: dict[str, Any]) -> bool:
    resources = as_list(selector.get("dataResources"))
    return (selector.get("readWriteType") or "All") == "All" and any(
        isinstance(r, dict) and r.get("type") == S3_OBJECT for r in resources
    )


def _advanced_selector_reads_and_writes_objects(selector: dict[str, Any]) -> bool:
    fields = {f.get("field"): f for f in as_list(selector.get("fieldSelectors")) if isinstance(f, dict)}
    category = as_list(dig(fields, "eventCategory", "equals"))
    kinds = as_list(dig(fields, "resources.type", "equals"))
    # A readOnly selector narrows the trail to reads or to writes; HIPAA access review needs both.
    return "Data" in category and S3_OBJECT in kinds and "readOnly" not in fields


@rule(
    id="CLIN-AUD-002",
    title="CloudTrail records S3 object reads and writes",
    severity="high",
    controls=(AUDIT, ACTIVITY_REVIEW),
    types=(TRAIL,),
    fix="Add an advanced event selector with eventCategory=Data and resources.type=AWS::S3::Object "
    "(no readOnly filter) for the PHI buckets.",
)
def trail_data_events(stack: StackView, findings: Findings) -> None:
    for trail in stack.of_type(TRAIL):
        props = stack.props(trail)
        basic = [s for s in as_list(props.get("eventSelectors")) if isinstance(s, dict)]
        advanced = [s for s in as_list(props.get("advancedEventSelectors")) if isinstance(s, dict)]
        if not (
            any(map(_basic_selector_reads_and_writes_objects, basic))
            or any(map(_advanced_selector_reads_and_writes_objects, advanced))
        ):
            findings.fail(trail, f"trail '{trail.name}' does not record S3 object-level reads and writes")


@rule(
    id="CLIN-AUD-003",
    title="Log groups keep logs at least the retention floor",
    severity="medium",
    controls=(AUDIT,),
    types=(LOG_GROUP,),
    config=("logRetentionFloorDays",),
    fix="Set retention_in_days to clinops:logRetentionDays (at or above the floor for the data classification).",
)
def log_retention(stack: StackView, findings: Findings) -> None:
    floor = stack.number("logRetentionFloorDays")
    for group in stack.of_type(LOG_GROUP):
        days = stack.props(group).get("retentionInDays")
        if days is UNKNOWN:
            findings.unknown(group, "retentionInDays")
        elif days and days < floor:  # 0 or unset means "never expire", which satisfies any floor
            findings.fail(group, f"log group '{group.name}' keeps logs {days} days; the floor is {floor}")


def _lock_days(props: dict[str, Any]) -> int:
    retention = dig(props, "rule", "defaultRetention") or {}
    return int(retention.get("days") or 0) + 365 * int(retention.get("years") or 0)


def _lock_problem(stack: StackView, lock: PolicyResource, floor: int) -> str | None:
    props = stack.props(lock)
    mode = dig(props, "rule", "defaultRetention", "mode")
    if mode != "COMPLIANCE":
        return f"Object Lock '{lock.name}' mode is {mode}; only COMPLIANCE stops even the root user deleting evidence"
    if _lock_days(props) < floor:
        return f"Object Lock '{lock.name}' retains {_lock_days(props)} days; the evidence floor is {floor}"
    buckets = stack.refs(lock, "bucket", BUCKET)
    if not buckets or not any(stack.props(b).get("objectLockEnabled") is True for b in buckets):
        return f"Object Lock '{lock.name}' is not attached to a bucket of this stack with object_lock_enabled=True"
    return None


@rule(
    id="CLIN-AUD-004",
    title="Evidence is kept in an Object Lock bucket in COMPLIANCE mode",
    severity="high",
    controls=(AUDIT, INTEGRITY),
    reads=(BUCKET,),
    types=(OBJECT_LOCK,),
    config=("evidenceRetentionFloorDays",),
    fix="Create the evidence bucket with object_lock_enabled=True and an aws.s3.BucketObjectLockConfiguration "
    "in COMPLIANCE mode retaining at least clinops:evidenceRetentionDays.",
)
def evidence_object_lock(stack: StackView, findings: Findings) -> None:
    floor = stack.number("evidenceRetentionFloorDays")
    compliant = 0
    for lock in stack.of_type(OBJECT_LOCK):
        problem = _lock_problem(stack, lock, floor)
        if problem:
            findings.fail(lock, problem)
        else:
            compliant += 1
    if stack.of_type(BUCKET) and not compliant:
        findings.fail(None, f"no bucket holds evidence under a COMPLIANCE Object Lock of at least {floor} days")


RULES = (trail_integrity, trail_data_events, log_retention, evidence_object_lock)
