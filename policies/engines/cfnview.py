"""A CloudFormation view of a Pulumi plan, for cdk-nag's HIPAA Security pack.

Only resources the pack has rules for are converted (cfnresources.CONVERTERS); everything else is reported
as not seen rather than translated for show. Pulumi splits an S3 bucket over several resources (encryption,
versioning, public access block, logging, ownership, lifecycle, object lock, replication); CloudFormation
keeps them on `AWS::S3::Bucket`, so they are folded into the bucket, whose findings land on the bucket URN.

Links come from `propertyDependencies` and are written as `{"Ref": ...}` / `Fn::GetAtt`, because the pack's
cross-resource rules (flow log of a VPC, logging target bucket, TLS-only bucket policy) resolve intrinsics
to logical IDs. A link to something not converted keeps the literal value, or a placeholder if unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from policies.engines.cfnresources import CONVERTERS, Ctx, drop_none, first
from policies.plan import Plan, PlanResource

BUCKET = "aws:s3/bucket:Bucket"
VPC = "aws:ec2/vpc:Vpc"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
# Pulumi's separate bucket resources, folded into the bucket their `bucket` input names.
BUCKET_PARTS = frozenset(
    f"aws:s3/bucket{m}:Bucket{m}"
    for m in (
        "ServerSideEncryptionConfiguration",
        "Versioning",
        "PublicAccessBlock",
        "Logging",
        "OwnershipControls",
        "LifecycleConfiguration",
        "ObjectLockConfiguration",
        "ReplicationConfig",
    )
)
# The parts some rule of the pack reads (encryption, versioning, public access, logging, replication).
READ_PARTS = frozenset(
    ("ServerSideEncryptionConfiguration", "Versioning", "PublicAccessBlock", "Logging", "ReplicationConfig")
)
# Why a platform type is not converted (shown in the coverage notes); the default is NOT_READ.
NOT_READ = "not converted: no rule in the pack reads this type"
NO_RULES = {
    "aws:kms/key:Key": "not converted: the pack has no KMS rules (key rotation is not checked)",
    "aws:sagemaker/model:Model": "not converted: no rule on AWS::SageMaker::Model (network isolation)",
    "aws:sagemaker/endpoint:Endpoint": "not converted: no rule on AWS::SageMaker::Endpoint (guardrails)",
    "aws:sagemaker/domain:Domain": "not converted: no rule on AWS::SageMaker::Domain",
}


@dataclass
class CfnView:
    template: dict[str, Any]
    urn_by_logical_id: dict[str, str] = field(default_factory=dict)
    type_by_logical_id: dict[str, str] = field(default_factory=dict)  # logical id -> Pulumi type
    # URN -> logical id of the resource whose rules judge it: bucket parts folded into their bucket, default
    # security groups and flow logs read by their VPC's rules
    judged_via: dict[str, str] = field(default_factory=dict)
    vpcs: dict[str, bool] = field(default_factory=dict)  # VPC logical id -> default SG emptied by Pulumi
    unconverted: dict[str, str] = field(default_factory=dict)  # URN -> why it is not in the template


def _logical_ids(resources: list[PlanResource]) -> dict[str, str]:
    """URN -> a unique alphanumeric logical id from the URN's name (`audit-logs` -> `AuditLogs`)."""
    taken: set[str] = set()
    out = {}
    for r in sorted(resources, key=lambda r: r.urn):
        base = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", r.name) if p) or "Resource"
        lid, n = base, 1
        while lid in taken:
            n += 1
            lid = f"{base}{n}"
        taken.add(lid)
        out[r.urn] = lid
    return out


def _owner_bucket(plan: Plan, part: PlanResource) -> PlanResource | None:
    """The bucket a part configures: by link, else (a literal name) by the bucket's name."""
    for urn in part.refs("bucket"):
        if plan.by_urn.get(urn) and plan.by_urn[urn].type == BUCKET:
            return plan.by_urn[urn]
    name = part.inputs.get("bucket")
    return next((b for b in plan.of_type(BUCKET) if name and b.inputs.get("bucket") == name), None)


def _closed(sg: PlanResource) -> bool:
    """Pulumi's DefaultSecurityGroup removes every rule it does not list: closed when it lists none."""
    return not sg.inputs.get("ingress") and not sg.inputs.get("egress")


def _bucket(ctx: Ctx, bucket: PlanResource, parts: list[PlanResource]) -> dict[str, Any]:
    """AWS::S3::Bucket properties from the bucket and the Pulumi resources that configure it."""
    props = drop_none(
        {"BucketName": ctx.val(bucket, "bucket"), "ObjectLockEnabled": ctx.val(bucket, "objectLockEnabled")}
    )
    for p in parts:
        kind = p.type.rsplit(":Bucket", 1)[1]
        rules = ctx.val(p, "rules") or []
        if kind == "ServerSideEncryptionConfiguration":
            sse = []
            for rule in rules:
                default = first(rule.get("applyServerSideEncryptionByDefault"))
                key = ctx.link(p, "rules", True, default.get("kmsMasterKeyId"))
                by_default = drop_none({"SSEAlgorithm": default.get("sseAlgorithm"), "KMSMasterKeyID": key})
                sse.append(
                    drop_none(
                        {"ServerSideEncryptionByDefault": by_default, "BucketKeyEnabled": rule.get("bucketKeyEnabled")}
                    )
                )
            props["BucketEncryption"] = {"ServerSideEncryptionConfiguration": sse}
        elif kind == "Versioning":
            props["VersioningConfiguration"] = drop_none(
                {"Status": first(ctx.val(p, "versioningConfiguration")).get("status")}
            )
        elif kind == "PublicAccessBlock":
            flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            props["PublicAccessBlockConfiguration"] = drop_none({f[0].upper() + f[1:]: ctx.val(p, f) for f in flags})
        elif kind == "Logging":  # a bucket may log to itself: no Ref then, it would be a cycle
            target = ctx.link(p, "targetBucket", avoid=bucket.urn)
            props["LoggingConfiguration"] = drop_none(
                {"DestinationBucketName": target, "LogFilePrefix": ctx.val(p, "targetPrefix")}
            )
        elif kind == "OwnershipControls":
            props["OwnershipControls"] = {
                "Rules": [{"ObjectOwnership": first(ctx.val(p, "rule")).get("objectOwnership")}]
            }
        elif kind == "LifecycleConfiguration":
            expiry = [first(rule.get("expiration")).get("days") for rule in rules]
            props["LifecycleConfiguration"] = {
                "Rules": [
                    drop_none({"Id": rule.get("id"), "Status": rule.get("status"), "ExpirationInDays": days})
                    for rule, days in zip(rules, expiry, strict=True)
                ]
            }
        elif kind == "ObjectLockConfiguration":
            retention = first(first(ctx.val(p, "rule")).get("defaultRetention"))
            props["ObjectLockEnabled"] = True
            props["ObjectLockConfiguration"] = {
                "ObjectLockEnabled": "Enabled",
                "Rule": {
                    "DefaultRetention": drop_none({k.title(): retention.get(k) for k in ("mode", "days", "years")})
                },
            }
        elif kind == "ReplicationConfig":
            targets = [ctx.link(p, "rules", True, first(rule.get("destination")).get("bucket")) for rule in rules]
            replicated = [
                {"Status": r.get("status"), "Destination": {"Bucket": t}} for r, t in zip(rules, targets, strict=True)
            ]
            props["ReplicationConfiguration"] = drop_none({"Role": ctx.link(p, "role", arn=True), "Rules": replicated})
    return props


def build_cfn_view(plan: Plan) -> CfnView:
    view = CfnView(template={})
    kept = [r for r in plan.resources if r.type in CONVERTERS or r.type == BUCKET]
    logical = _logical_ids(kept)
    ctx = Ctx(plan, logical)
    parts: dict[str, list[PlanResource]] = {}
    for r in plan.of_type(*BUCKET_PARTS):
        owner = _owner_bucket(plan, r)
        if owner is None:
            view.unconverted[r.urn] = "configures no bucket in this plan"
            continue
        parts.setdefault(owner.urn, []).append(r)
        if r.type.rsplit(":Bucket", 1)[1] in READ_PARTS:
            view.judged_via[r.urn] = logical[owner.urn]
        else:  # folded so the bucket is complete, but no rule of the pack reads it
            view.unconverted[r.urn] = "folded into its bucket; no rule in the pack reads it"
    resources: dict[str, Any] = {}
    for r in kept:
        lid = logical[r.urn]
        if r.type == BUCKET:
            made: Any = ("AWS::S3::Bucket", _bucket(ctx, r, parts.get(r.urn, [])))
        else:
            made = CONVERTERS[r.type](ctx, r)
        items = [made] if isinstance(made, tuple) else made or []
        if not items:
            view.unconverted[r.urn] = (
                "nothing the pack reads (no routes, an egress rule, or a document unknown until apply)"
            )
        for i, (cfn_type, props) in enumerate(items):
            item_id = lid if i == 0 else f"{lid}{i + 1}"  # a route table's routes, a rule's CIDRs
            while item_id in resources or (i and item_id in logical.values()):
                item_id += "X"  # never collide with another resource's own id
            resources[item_id] = {"Type": cfn_type, "Properties": props}
            view.urn_by_logical_id[item_id] = r.urn
            view.type_by_logical_id[item_id] = r.type
        if r.type == VPC:
            view.vpcs[lid] = False
    for log in plan.of_type(FLOW_LOG):
        vpc = next((logical[u] for u in log.refs("vpcId") if logical.get(u) in view.vpcs), None)
        if vpc:
            view.judged_via[log.urn] = vpc
    for sg in plan.of_type(DEFAULT_SG):
        for urn in sg.refs("vpcId"):
            if logical.get(urn) in view.vpcs:
                view.vpcs[logical[urn]] = _closed(sg)
                view.judged_via[sg.urn] = logical[urn]  # judged through the VPC's VPCDefaultSecurityGroupClosed
    for r in plan.resources:
        if r.custom and not r.type.startswith("pulumi:") and r.urn not in logical and r.urn not in view.judged_via:
            view.unconverted.setdefault(r.urn, NO_RULES.get(r.type, NOT_READ))
    view.template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    return view
