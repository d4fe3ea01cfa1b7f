"""Predict AWS Config's "Operational Best Practices for HIPAA Security" conformance pack before deploy.

The pack (awslabs/aws-config-rules, aws-config-conformance-packs/Operational-Best-Practices-for-HIPAA-Security.yaml)
is a list of AWS Config managed rules. Those whose resource types our plans declare are evaluated here, on the
plan, the way each rule's documentation says AWS Config evaluates the deployed resource, with the pack's
parameter values (e.g. cloudwatch-alarm-action-check: alarm and INSUFFICIENT_DATA actions required, OK actions
not). A NON_COMPLIANT prediction is a failed result of engine `aws-config`, named by the Config rule name, so
it can be fixed or carry a reviewed exception like any other finding. Rules that judge the account rather than
a declared resource (root MFA, password policy, GuardDuty, ...) cannot be predicted from a plan; they are
listed in the report's notes, not passed.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from policies import controls
from policies.model import CheckResult, EngineReport, Severity
from policies.plan import Plan, PlanResource
from policies.rules.documents import BadDocument, denies_insecure_transport, parse_json, public_principal, statements

ENGINE = "aws-config"
PACK = "Operational-Best-Practices-for-HIPAA-Security"

BUCKET = "aws:s3/bucket:Bucket"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOPIC = "aws:sns/topic:Topic"
TRAIL = "aws:cloudtrail/trail:Trail"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
LAMBDA = "aws:lambda/function:Function"
LAMBDA_PERMISSION = "aws:lambda/permission:Permission"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"

# Pack parameters (the template's defaults).
BLOCKED_KMS_ACTIONS = ("kms:*", "kms:Decrypt", "kms:ReEncrypt*")
RESTRICTED_PORTS = (20, 21, 3389, 3306, 4333)

# Pack rules that judge the account or runtime state, not a resource a plan declares.
ACCOUNT_LEVEL = (
    "access-keys-rotated",
    "cloudtrail-enabled",
    "ec2-ebs-encryption-by-default",
    "guardduty-enabled-centralized",
    "iam-password-policy",
    "iam-root-access-key-check",
    "iam-user-mfa-enabled",
    "iam-user-unused-credentials-check",
    "mfa-enabled-for-iam-console-access",
    "root-account-hardware-mfa-enabled",
    "root-account-mfa-enabled",
    "s3-account-level-public-access-blocks-periodic",
    "securityhub-enabled",
    "annual-risk-assessment-performed",
    "kms-cmk-not-scheduled-for-deletion",
)

Verdict = Callable[[Plan, PlanResource], str | None]  # the NON_COMPLIANT reason, or None when compliant


@dataclass(frozen=True)
class ManagedRule:
    name: str  # ConfigRuleName in the pack
    types: tuple[str, ...]
    severity: Severity
    controls: tuple[str, ...]
    fix: str
    verdict: Verdict


def _linked(plan: Plan, target: PlanResource, type_: str, prop: str = "bucket") -> list[PlanResource]:
    """Resources of `type_` whose `prop` input was computed from `target` (or names it literally)."""
    name = target.inputs.get("bucket") if target.type == BUCKET else None
    return [
        r
        for r in plan.of_type(type_)
        if target.urn in r.refs(prop) or (name is not None and r.inputs.get(prop) == name and not r.refs(prop))
    ]


def _documents(resource: PlanResource, prop: str = "policy") -> list[dict[str, Any]]:
    try:
        return statements(parse_json(resource.inputs.get(prop)))
    except BadDocument:
        return []


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _allows(statement: dict[str, Any], patterns: Iterable[str]) -> list[str]:
    """Blocked patterns an Allow statement grants (an action wildcard counts when it covers the pattern)."""
    if statement.get("Effect") != "Allow":
        return []
    actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
    return [p for p in patterns if any(fnmatch.fnmatchcase(p.lower(), a) or a == p.lower() for a in actions)]


def _on_all_keys(statement: dict[str, Any]) -> bool:
    resources = [str(r) for r in _as_list(statement.get("Resource"))]
    return "NotResource" in statement or any(
        r == "*" or r.endswith(":key/*") or r == "arn:aws:kms:*" for r in resources
    )


# --- S3 ---------------------------------------------------------------------------------------------------------


def _lock_enabled(plan: Plan, bucket: PlanResource) -> str | None:
    if bucket.inputs.get("objectLockEnabled") is not True:
        return f"bucket '{bucket.name}' does not have Object Lock enabled"
    return None


def _logging_enabled(plan: Plan, bucket: PlanResource) -> str | None:
    if not _linked(plan, bucket, "aws:s3/bucketLogging:BucketLogging"):
        return f"bucket '{bucket.name}' has no server access logging"
    return None


def _public_access_blocked(plan: Plan, bucket: PlanResource) -> str | None:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    blocks = _linked(plan, bucket, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    if not any(all(b.inputs.get(f) is True for f in flags) for b in blocks):
        return f"bucket '{bucket.name}' lacks a public access block with all four settings true"
    return None


def _ssl_only(plan: Plan, bucket: PlanResource) -> str | None:
    policies = _linked(plan, bucket, "aws:s3/bucketPolicy:BucketPolicy")
    if not any(denies_insecure_transport(s) for p in policies for s in _documents(p)):
        return f"bucket '{bucket.name}' policy does not deny requests with aws:SecureTransport false"
    return None


def _versioning(plan: Plan, bucket: PlanResource) -> bool:
    configs = _linked(plan, bucket, "aws:s3/bucketVersioning:BucketVersioning")
    return any((c.inputs.get("versioningConfiguration") or {}).get("status") == "Enabled" for c in configs)


def _versioning_enabled(plan: Plan, bucket: PlanResource) -> str | None:
    return None if _versioning(plan, bucket) else f"bucket '{bucket.name}' does not have versioning enabled"


def _default_algorithms(plan: Plan, bucket: PlanResource) -> list[str]:
    configs = _linked(
        plan, bucket, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    return [
        str((rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm"))
        for c in configs
        for rule in _as_list(c.inputs.get("rules"))
        if isinstance(rule, dict)
    ]


def _sse_enabled(plan: Plan, bucket: PlanResource) -> str | None:
    return None if _default_algorithms(plan, bucket) else f"bucket '{bucket.name}' has no default encryption"


def _sse_kms(plan: Plan, bucket: PlanResource) -> str | None:
    algorithms = _default_algorithms(plan, bucket)
    if not algorithms or not all(a.startswith("aws:kms") for a in algorithms):
        return f"bucket '{bucket.name}' default encryption is {algorithms or 'not set'}, not aws:kms"
    return None


def _version_lifecycle(plan: Plan, bucket: PlanResource) -> str | None:
    if not _versioning(plan, bucket):
        return f"bucket '{bucket.name}' does not have versioning enabled"
    if not _linked(plan, bucket, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        return f"bucket '{bucket.name}' has no lifecycle policy"
    return None


def _acl_prohibited(plan: Plan, bucket: PlanResource) -> str | None:
    acls = _linked(plan, bucket, "aws:s3/bucketAclV2:BucketAclV2") + _linked(plan, bucket, "aws:s3/bucketAcl:BucketAcl")
    if acls or bucket.inputs.get("acl") not in (None, "private") or bucket.inputs.get("grants"):
        return f"bucket '{bucket.name}' grants access through an ACL"
    return None


def _public_grant(plan: Plan, bucket: PlanResource, action: str) -> str | None:
    for policy in _linked(plan, bucket, "aws:s3/bucketPolicy:BucketPolicy"):
        for s in _documents(policy):
            if s.get("Effect") == "Allow" and public_principal(s) and "Condition" not in s and _allows(s, [action]):
                return f"bucket '{bucket.name}' policy allows {action} to everyone"
    return None


def _replication(plan: Plan, bucket: PlanResource) -> str | None:
    if not _linked(plan, bucket, "aws:s3/bucketReplicationConfig:BucketReplicationConfig"):
        return f"bucket '{bucket.name}' has no replication configuration"
    return None


def _event_notifications(plan: Plan, bucket: PlanResource) -> str | None:
    if not _linked(plan, bucket, "aws:s3/bucketNotification:BucketNotification"):
        return f"bucket '{bucket.name}' has no event notifications"
    return None


# --- CloudWatch, SNS, SageMaker ------------------------------------------------------------------------------


def _alarm_actions(plan: Plan, alarm: PlanResource) -> str | None:
    missing = [k for k in ("alarmActions", "insufficientDataActions") if not _as_list(alarm.inputs.get(k))]
    if missing:
        return f"alarm '{alarm.name}' has no {' and no '.join(missing)}"
    return None


def _sns_kms(plan: Plan, topic: PlanResource) -> str | None:
    return None if topic.inputs.get("kmsMasterKeyId") else f"topic '{topic.name}' is not encrypted with KMS"


def _endpoint_config_kms(plan: Plan, config: PlanResource) -> str | None:
    return None if config.inputs.get("kmsKeyArn") else f"endpoint configuration '{config.name}' sets no KMS key"


# --- IAM ----------------------------------------------------------------------------------------------------------


def _blocked_kms(resource: PlanResource) -> str | None:
    for s in _documents(resource):
        granted = _allows(s, BLOCKED_KMS_ACTIONS)
        if granted and _on_all_keys(s):
            sid = s.get("Sid") or "a statement"
            return f"{resource.name} {sid} allows {', '.join(granted)} on all KMS keys"
    return None


def _customer_policy_kms(plan: Plan, policy: PlanResource) -> str | None:
    return _blocked_kms(policy)  # the pack's excludePermissionBoundaryPolicy default is false: boundaries count


def _inline_policy_kms(plan: Plan, role_policy: PlanResource) -> str | None:
    return _blocked_kms(role_policy)


def _no_inline(plan: Plan, role: PlanResource) -> str | None:
    inline = [p for p in plan.of_type(ROLE_POLICY) if role.urn in p.refs("role")]
    if inline or role.inputs.get("inlinePolicies"):
        return f"role '{role.name}' has inline policies ({', '.join(p.name for p in inline) or 'inlinePolicies'})"
    return None


def _admin_access(plan: Plan, policy: PlanResource) -> str | None:
    for s in _documents(policy):
        actions = [str(a) for a in _as_list(s.get("Action"))]
        if s.get("Effect") == "Allow" and "*" in actions and "*" in [str(r) for r in _as_list(s.get("Resource"))]:
            return f"policy '{policy.name}' allows every action on every resource"
    return None


def _full_access(plan: Plan, policy: PlanResource) -> str | None:
    for s in _documents(policy):
        full = [str(a) for a in _as_list(s.get("Action")) if str(a).endswith(":*")]
        if s.get("Effect") == "Allow" and full:
            return f"policy '{policy.name}' {s.get('Sid') or 'a statement'} allows {', '.join(full)}"
    return None


# --- CloudTrail, network, Lambda ----------------------------------------------------------------------------------


def _trail(check: Callable[[dict[str, Any]], bool], what: str) -> Verdict:
    def verdict(plan: Plan, trail: PlanResource) -> str | None:
        return None if check(trail.inputs) else f"trail '{trail.name}' {what}"

    return verdict


def _records_s3_data(inputs: dict[str, Any]) -> bool:
    for selector in _as_list(inputs.get("advancedEventSelectors")):
        fields = {f.get("field"): _as_list(f.get("equals")) for f in _as_list(selector.get("fieldSelectors"))}
        if "Data" in fields.get("eventCategory", []) and "AWS::S3::Object" in fields.get("resources.type", []):
            return True
    return any(
        r.get("type") == "AWS::S3::Object"
        for s in _as_list(inputs.get("eventSelectors"))
        for r in _as_list(s.get("dataResources"))
    )


def _flow_logs(plan: Plan, vpc: PlanResource) -> str | None:
    logs = [f for f in plan.of_type("aws:ec2/flowLog:FlowLog") if vpc.urn in f.refs("vpcId")]
    return None if logs else f"VPC '{vpc.name}' has no flow log"


def _default_sg_closed(plan: Plan, group: PlanResource) -> str | None:
    if _as_list(group.inputs.get("ingress")) or _as_list(group.inputs.get("egress")):
        return f"default security group '{group.name}' has rules"
    return None


def _open_ingress(group: PlanResource, ports: Iterable[int]) -> list[int]:
    opened = []
    for rule in _as_list(group.inputs.get("ingress")):
        cidrs = _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))
        if not any(c in ("0.0.0.0/0", "::/0") for c in cidrs):
            continue
        low, high, proto = rule.get("fromPort", 0), rule.get("toPort", 65535), str(rule.get("protocol"))
        opened += [p for p in ports if proto in ("-1", "all") or low <= p <= high]
    return opened


def _restricted_ssh(plan: Plan, group: PlanResource) -> str | None:
    return f"security group '{group.name}' allows SSH from anywhere" if _open_ingress(group, [22]) else None


def _restricted_ports(plan: Plan, group: PlanResource) -> str | None:
    opened = _open_ingress(group, RESTRICTED_PORTS)
    return f"security group '{group.name}' opens {opened} to anywhere" if opened else None


def _subnet_private(plan: Plan, subnet: PlanResource) -> str | None:
    return f"subnet '{subnet.name}' assigns public IPs" if subnet.inputs.get("mapPublicIpOnLaunch") else None


def _no_igw_route(plan: Plan, table: PlanResource) -> str | None:
    for route in _as_list(table.inputs.get("routes")):
        if route.get("cidrBlock") in ("0.0.0.0/0",) and str(route.get("gatewayId", "")).startswith("igw-"):
            return f"route table '{table.name}' routes 0.0.0.0/0 to an internet gateway"
    return None


def _lambda_public(plan: Plan, function: PlanResource) -> str | None:
    for permission in plan.of_type(LAMBDA_PERMISSION):
        if function.urn in permission.refs("function") and permission.inputs.get("principal") == "*":
            return f"function '{function.name}' may be invoked by anyone ({permission.name})"
    return None


# Short names for the table below.
E, A, T, INT, AC = (
    controls.ENCRYPTION,
    controls.AUDIT,
    controls.TRANSMISSION,
    controls.INTEGRITY,
    controls.ACCESS_CONTROL,
)
CONTINGENCY = controls.CONTINGENCY
# fmt: off
RULES: tuple[ManagedRule, ...] = (
    ManagedRule("cloudwatch-alarm-action-check", (ALARM,), "medium", (A, controls.ACTIVITY_REVIEW),
                "Give the alarm alarm_actions and insufficient_data_actions (the alerts topic).", _alarm_actions),
    ManagedRule("s3-bucket-default-lock-enabled", (BUCKET,), "medium", (INT,),
                "Create the bucket with object_lock_enabled=True, or record why not.", _lock_enabled),
    ManagedRule("s3-bucket-logging-enabled", (BUCKET,), "medium", (A,),
                "Add an aws.s3.BucketLogging for the bucket.", _logging_enabled),
    ManagedRule("s3-bucket-level-public-access-prohibited", (BUCKET,), "high", (AC,),
                "Add an aws.s3.BucketPublicAccessBlock with all four settings true.", _public_access_blocked),
    ManagedRule("s3-bucket-ssl-requests-only", (BUCKET,), "high", (T,),
                "Deny s3:* when aws:SecureTransport is false in the bucket policy.", _ssl_only),
    ManagedRule("s3-bucket-versioning-enabled", (BUCKET,), "medium", (INT, CONTINGENCY),
                "Add an aws.s3.BucketVersioning with status Enabled.", _versioning_enabled),
    ManagedRule("s3-bucket-server-side-encryption-enabled", (BUCKET,), "high", (E,),
                "Add a default encryption configuration.", _sse_enabled),
    ManagedRule("s3-default-encryption-kms", (BUCKET,), "high", (E,),
                "Default-encrypt with aws:kms and a key of this stack.", _sse_kms),
    ManagedRule("s3-version-lifecycle-policy-check", (BUCKET,), "low", (CONTINGENCY,),
                "Enable versioning and add a lifecycle configuration.", _version_lifecycle),
    ManagedRule("s3-bucket-acl-prohibited", (BUCKET,), "medium", (AC,),
                "Disable ACLs (object ownership BucketOwnerEnforced) and grant through policies.", _acl_prohibited),
    ManagedRule("s3-bucket-public-read-prohibited", (BUCKET,), "critical", (AC,),
                "Remove public read from the bucket policy.", lambda p, b: _public_grant(p, b, "s3:GetObject")),
    ManagedRule("s3-bucket-public-write-prohibited", (BUCKET,), "critical", (AC,),
                "Remove public write from the bucket policy.", lambda p, b: _public_grant(p, b, "s3:PutObject")),
    ManagedRule("s3-bucket-replication-enabled", (BUCKET,), "low", (CONTINGENCY,),
                "Replicate the bucket, or record why not.", _replication),
    ManagedRule("s3-event-notifications-enabled", (BUCKET,), "low", (A,),
                "Configure event notifications, or record why not.", _event_notifications),
    ManagedRule("sns-encrypted-kms", (TOPIC,), "high", (E,), "Set kms_master_key_id.", _sns_kms),
    ManagedRule("sagemaker-endpoint-configuration-kms-key-configured", (ENDPOINT_CONFIG,), "high", (E,),
                "Set kms_key_arn on the endpoint configuration.", _endpoint_config_kms),
    ManagedRule("iam-customer-policy-blocked-kms-actions", (POLICY,), "high", (AC, E),
                "Scope kms:Decrypt / kms:ReEncrypt* to named key ARNs.", _customer_policy_kms),
    ManagedRule("iam-inline-policy-blocked-kms-actions", (ROLE_POLICY,), "high", (AC, E),
                "Scope kms:Decrypt / kms:ReEncrypt* to named key ARNs.", _inline_policy_kms),
    ManagedRule("iam-no-inline-policy-check", (ROLE,), "low", (AC,),
                "Use managed policies, or record why inline.", _no_inline),
    ManagedRule("iam-policy-no-statements-with-admin-access", (POLICY,), "critical", (AC,),
                "Remove Action * on Resource *.", _admin_access),
    ManagedRule("iam-policy-no-statements-with-full-access", (POLICY,), "medium", (AC,),
                "Replace service:* with the actions needed.", _full_access),
    ManagedRule("cloud-trail-encryption-enabled", (TRAIL,), "high", (E, A), "Set kms_key_id on the trail.",
                _trail(lambda i: bool(i.get("kmsKeyId")), "is not KMS-encrypted")),
    ManagedRule("cloud-trail-log-file-validation-enabled", (TRAIL,), "high", (A, INT),
                "Set enable_log_file_validation=True.",
                _trail(lambda i: i.get("enableLogFileValidation") is True, "has log file validation off")),
    ManagedRule("multi-region-cloudtrail-enabled", (TRAIL,), "high", (A,), "Set is_multi_region_trail=True.",
                _trail(lambda i: i.get("isMultiRegionTrail") is True, "is not multi-region")),
    ManagedRule("cloud-trail-cloud-watch-logs-enabled", (TRAIL,), "medium", (A,),
                "Set cloud_watch_logs_group_arn and role.",
                _trail(lambda i: bool(i.get("cloudWatchLogsGroupArn")), "does not deliver to CloudWatch Logs")),
    ManagedRule("cloudtrail-s3-dataevents-enabled", (TRAIL,), "high", (A,), "Select S3 object data events.",
                _trail(_records_s3_data, "does not record S3 data events")),
    ManagedRule("vpc-flow-logs-enabled", (VPC,), "medium", (A,), "Add an aws.ec2.FlowLog for the VPC.", _flow_logs),
    ManagedRule("vpc-default-security-group-closed", (DEFAULT_SECURITY_GROUP,), "medium", (AC,),
                "Leave the default security group without rules.", _default_sg_closed),
    ManagedRule("restricted-ssh", (SECURITY_GROUP,), "high", (AC, T), "Do not open port 22 to 0.0.0.0/0.",
                _restricted_ssh),
    ManagedRule("restricted-common-ports", (SECURITY_GROUP,), "high", (AC, T),
                "Do not open ports 20, 21, 3389, 3306, 4333 to 0.0.0.0/0.", _restricted_ports),
    ManagedRule("subnet-auto-assign-public-ip-disabled", (SUBNET,), "medium", (AC,),
                "Set map_public_ip_on_launch=False.", _subnet_private),
    ManagedRule("no-unrestricted-route-to-igw", (ROUTE_TABLE,), "high", (AC, T),
                "Remove 0.0.0.0/0 routes to internet gateways.", _no_igw_route),
    ManagedRule("lambda-function-public-access-prohibited", (LAMBDA,), "high", (AC,),
                "Grant invoke to a service principal with a source ARN, never '*'.", _lambda_public),
)
# fmt: on


def evaluate(plan: Plan, rules: Iterable[ManagedRule] = RULES) -> EngineReport:
    started = time.perf_counter()
    rules = tuple(rules)
    results: list[CheckResult] = []
    for rule in rules:
        for resource in plan.of_type(*rule.types):
            try:
                reason = rule.verdict(plan, resource)
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                # An input of an unexpected shape is not evidence of compliance: fail closed, name it.
                reason = f"cannot be evaluated: an input of '{resource.name}' has an unexpected shape ({exc})"
            results.append(
                CheckResult(
                    engine=ENGINE,
                    rule_id=rule.name,
                    title=f"AWS Config {rule.name} ({PACK}) would find this resource compliant",
                    severity=rule.severity,
                    controls=rule.controls,
                    urn=resource.urn,
                    resource_type=resource.type,
                    status="failed" if reason else "passed",
                    message=f"predicted NON_COMPLIANT: {reason}" if reason else "",
                    fix=rule.fix if reason else "",
                )
            )
    judged = {t for rule in rules for t in rule.types}
    coverage = {
        r.type: "seen" if r.type in judged else "unseen"
        for r in plan.resources
        if r.custom and not r.type.startswith("pulumi:providers:")
    }
    return EngineReport(
        engine=ENGINE,
        results=sorted(results, key=CheckResult.sort_key),
        coverage=dict(sorted(coverage.items())),
        seconds=round(time.perf_counter() - started, 3),
        notes=[
            f"{PACK}: {len(rules)} resource rules predicted; account-level rules not predictable from a plan: "
            + ", ".join(ACCOUNT_LEVEL)
        ],
    )


def scan_plans(plans: list[Plan]) -> list[EngineReport]:
    return [evaluate(plan) for plan in plans]
