"""Plans for the third-party engines (checkov, cdk-nag): a secure one that meets the rules both scanners
share, and a broken one where each break sits on a resource of its own, so a test can say which URN must
be blamed and which must not (the broken plan keeps a compliant bucket and VPC next to the broken ones).
Inputs and links are shaped as the offline render writes them (camelCase inputs, IDs and ARNs as literals,
links as propertyDependencies)."""

from __future__ import annotations

import functools
import json
from typing import Any

from policies.engines.tfview import UNKNOWN
from tests.policies.planbuilder import DELETE, PlanBuilder

KEY = "aws:kms/key:Key"
VPC = "aws:ec2/vpc:Vpc"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
BUCKET = "aws:s3/bucket:Bucket"
TRAIL = "aws:cloudtrail/trail:Trail"
TOPIC = "aws:sns/topic:Topic"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
S3 = "aws:s3/bucket{}:Bucket{}"  # S3.format("Versioning", "Versioning")


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def trust(service: str) -> str:
    return doc({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


def _network(b: PlanBuilder, vpc: str, cidr: str) -> None:
    b.add(VPC, vpc, {"cidrBlock": cidr, "enableDnsSupport": True, "enableDnsHostnames": True})
    b.add(DEFAULT_SG, f"{vpc}-default-sg", {"vpcId": f"{vpc}-id", "ingress": [], "egress": []}, {"vpcId": [vpc]})
    b.add(
        FLOW_LOG,
        f"{vpc}-flow-log",
        {
            "vpcId": f"{vpc}-id",
            "trafficType": "ALL",
            "logDestination": b.arn("flow-logs"),
            "iamRoleArn": b.arn("flow-logs-role"),
        },
        {"vpcId": [vpc], "logDestination": ["flow-logs"], "iamRoleArn": ["flow-logs-role"]},
    )


def _bucket(b: PlanBuilder, name: str, log_bucket: str | None) -> None:
    bucket = f"clinops-prod-{name}"
    b.add(BUCKET, name, {"bucket": bucket, "forceDestroy": False})
    b.add(
        S3.format("ServerSideEncryptionConfiguration", "ServerSideEncryptionConfiguration"),
        f"{name}-encryption",
        {
            "bucket": bucket,
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": b.arn("data-key"),
                    },
                    "bucketKeyEnabled": True,
                }
            ],
        },
        {"bucket": [name], "rules": ["data-key"]},
    )
    b.add(
        S3.format("Versioning", "Versioning"),
        f"{name}-versioning",
        {"bucket": bucket, "versioningConfiguration": {"status": "Enabled"}},
        {"bucket": [name]},
    )
    b.add(
        S3.format("PublicAccessBlock", "PublicAccessBlock"),
        f"{name}-public-access-block",
        {
            "bucket": bucket,
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        {"bucket": [name]},
    )
    b.add(
        S3.format("Policy", "Policy"),
        f"{name}-policy",
        {
            "bucket": bucket,
            "policy": doc(
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ),
        },
        {"bucket": [name], "policy": [name]},
    )
    if log_bucket:
        b.add(
            S3.format("Logging", "Logging"),
            f"{name}-logging",
            {"bucket": bucket, "targetBucket": f"clinops-prod-{log_bucket}", "targetPrefix": f"{name}/"},
            {"bucket": [name], "targetBucket": [log_bucket]},
        )


def secure() -> PlanBuilder:
    b = PlanBuilder("prod")
    b.add(
        KEY,
        "data-key",
        {
            "enableKeyRotation": True,
            "deletionWindowInDays": 30,
            "policy": doc(
                {
                    "Sid": "Root",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ),
        },
    )
    b.add(LOG_GROUP, "flow-logs", {"retentionInDays": 731, "kmsKeyId": b.arn("data-key")}, {"kmsKeyId": ["data-key"]})
    b.add(ROLE, "flow-logs-role", {"assumeRolePolicy": trust("vpc-flow-logs.amazonaws.com")})
    _network(b, "vpc", "10.40.0.0/16")
    b.add(
        SUBNET,
        "private-a",
        {"vpcId": "vpc-id", "cidrBlock": "10.40.0.0/20", "mapPublicIpOnLaunch": False},
        {"vpcId": ["vpc"]},
    )
    b.add(
        SG,
        "endpoints-sg",
        {
            "vpcId": "vpc-id",
            "description": "VPC endpoints",
            "egress": [],
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 443,
                    "toPort": 443,
                    "cidrBlocks": ["10.40.0.0/16"],
                    "description": "TLS",
                }
            ],
        },
        {"vpcId": ["vpc"]},
    )
    b.add(
        ENDPOINT,
        "sagemaker-runtime",
        {
            "vpcId": "vpc-id",
            "vpcEndpointType": "Interface",
            "serviceName": "com.amazonaws.us-east-1.sagemaker.runtime",
            "privateDnsEnabled": True,
            "securityGroupIds": ["endpoints-sg-id"],
            "subnetIds": ["private-a-id"],
        },
        {"vpcId": ["vpc"], "securityGroupIds": ["endpoints-sg"], "subnetIds": ["private-a"]},
    )
    _bucket(b, "access-logs", None)
    _bucket(b, "phi-data", "access-logs")
    b.add(ROLE, "trail-role", {"assumeRolePolicy": trust("cloudtrail.amazonaws.com")})
    b.add(
        TRAIL,
        "trail",
        {
            "s3BucketName": "clinops-prod-access-logs",
            "enableLogFileValidation": True,
            "isMultiRegionTrail": True,
            "includeGlobalServiceEvents": True,
            "kmsKeyId": b.arn("data-key"),
            "cloudWatchLogsGroupArn": b.arn("flow-logs") + ":*",
            "cloudWatchLogsRoleArn": b.arn("trail-role"),
        },
        {
            "s3BucketName": ["access-logs"],
            "kmsKeyId": ["data-key"],
            "cloudWatchLogsGroupArn": ["flow-logs"],
            "cloudWatchLogsRoleArn": ["trail-role"],
        },
    )
    b.add(TOPIC, "alerts", {"kmsMasterKeyId": b.arn("data-key")}, {"kmsMasterKeyId": ["data-key"]})
    b.add(
        ENDPOINT_CONFIG,
        "readmission-config",
        {
            "kmsKeyArn": b.arn("data-key"),
            "productionVariants": [
                {
                    "variantName": "AllTraffic",
                    "modelName": "readmission",
                    "instanceType": "ml.m5.large",
                    "initialInstanceCount": 2,
                }
            ],
        },
        {"kmsKeyArn": ["data-key"]},
    )
    b.add(
        POLICY,
        "read-only",
        {
            "policy": doc(
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::clinops-prod-phi-data/*"}
            )
        },
    )
    return b


# The broken plan: what breaks, on which resource (rule ids in the tests refer to these names).
BROKEN_BUCKET = "phi-data"  # no SSE-KMS, no public access block, no logging, no versioning
BROKEN_VPC = "vpc"  # no flow log, no default-security-group resource
CLOSED_VPC = "closed-vpc"  # a second, compliant VPC in the same plan: must not be blamed
BROKEN_KEY = "data-key"  # no rotation
BROKEN_SG = "endpoints-sg"  # SSH from 0.0.0.0/0
BROKEN_TRAIL = "trail"  # no log file validation, no KMS key


def broken() -> PlanBuilder:
    b = secure()
    for part in ("encryption", "public-access-block", "logging", "versioning"):
        b.remove(f"{BROKEN_BUCKET}-{part}")
    b.remove(f"{BROKEN_VPC}-flow-log")
    b.remove(f"{BROKEN_VPC}-default-sg")
    _network(b, CLOSED_VPC, "10.41.0.0/16")
    b.set(BROKEN_KEY, "enableKeyRotation", False)
    b.set(BROKEN_SG, "ingress.1", {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]})
    b.set(BROKEN_TRAIL, "enableLogFileValidation", False)
    b.set(BROKEN_TRAIL, "kmsKeyId", DELETE)
    b.unlink(BROKEN_TRAIL, "kmsKeyId")
    b.set("flow-logs", "kmsKeyId", DELETE)
    b.unlink("flow-logs", "kmsKeyId")
    b.set("alerts", "kmsMasterKeyId", DELETE)
    b.unlink("alerts", "kmsMasterKeyId")
    b.set("readmission-config", "kmsKeyArn", DELETE)
    b.unlink("readmission-config", "kmsKeyArn")
    b.set("private-a", "mapPublicIpOnLaunch", True)
    b.set("read-only", "policy", doc({"Effect": "Allow", "Action": "*", "Resource": "*"}))
    # keys in source order, not sorted: the pack's IAM rules match sorted JSON, the view must sort it
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": "*"}]}
    b.add(POLICY, "admin", {"policy": json.dumps(admin)})
    return b


def unknown_ids(b: PlanBuilder) -> PlanBuilder:
    """As a real `pulumi preview` of a new stack shows it: every linked top-level string is unknown."""
    for resource in b.resources.values():
        for prop in resource.links:
            value = resource.inputs.get(prop)
            if isinstance(value, str):
                resource.inputs[prop] = UNKNOWN
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                resource.inputs[prop] = [UNKNOWN] * len(value)
    return b


@functools.cache
def rendered(stack: str) -> dict[str, Any]:
    """The real platform program rendered offline (a few seconds: cached per process)."""
    from infra.render import render

    return render(stack)


def assert_real_stack_promises(
    scan: Any, promised: list[tuple[str, str]], rule_id: Any = lambda rule: rule, outside: Any = lambda rule, r: False
) -> None:
    """Run an engine over the rendered prod stack: every finding lands on one of its URNs, every resource type
    is in the coverage report, and each promised (rule, type) passes on every resource of that type, except
    those `outside(rule, resource)` says the check does not apply to (it must then report nothing on them)."""
    from policies.plan import parse_plan

    plan = parse_plan(rendered("prod"))
    report = scan(plan)
    assert {r.urn for r in report.results} <= set(plan.by_urn)
    assert set(report.coverage) == {r.type for r in plan.resources if r.custom and not r.type.startswith("pulumi:")}
    for rule, pulumi_type in promised:
        resources = plan.of_type(pulumi_type)
        assert resources, pulumi_type
        for resource in resources:
            seen = {r.status for r in report.results if r.rule_id == rule_id(rule) and r.urn == resource.urn}
            assert seen == (set() if outside(rule, resource) else {"passed"}), (rule, resource.urn)
