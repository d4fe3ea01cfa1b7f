"""Pulumi inputs -> CloudFormation properties, per type, for the cfnview module.

Only what the HIPAA Security pack's rules read, plus identity fields, is carried over. Most types are a
table (`SIMPLE`): CloudFormation property <- Pulumi input, where `input@ref` / `input@arn` / `input@refs`
turn the input's link into `{"Ref": ...}` / `Fn::GetAtt ... Arn` / a list of those. The rest need code
(rules split per CIDR, routes split out of a table, policy documents parsed, bucket parts folded).
CfnInclude type-checks every property, so values keep their types.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from policies.plan import Plan, PlanResource

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_TOP = object()  # "the top-level input itself" for Ctx.link


class Ctx:
    def __init__(self, plan: Plan, logical: dict[str, str]) -> None:
        self.plan, self.logical = plan, logical

    def val(self, r: PlanResource, prop: str, default: Any = None) -> Any:
        v = r.inputs.get(prop, default)
        return default if v == UNKNOWN else v

    def link(self, r: PlanResource, prop: str, arn: bool = False, value: Any = _TOP, avoid: str = "") -> Any:
        """The input as an intrinsic to the resource it came from, else its literal (or a placeholder).
        `value` is a nested value inside `prop` (links are known per top-level input only); `avoid` is the
        URN the result is folded into (a bucket logging to itself): a Ref to it would be a cycle."""
        raw = r.inputs.get(prop) if value is _TOP else value
        for urn in r.refs(prop):
            if urn in self.logical and urn != avoid:
                lid = self.logical[urn]
                return {"Fn::GetAtt": [lid, "Arn"]} if arn else {"Ref": lid}
        if raw in (None, UNKNOWN) and r.refs(prop):
            return f"unknown-until-apply:{self.plan.by_urn[r.refs(prop)[0]].name}"
        return raw

    def links(self, r: PlanResource, prop: str, arn: bool = False) -> list[Any] | None:
        raw = self.val(r, prop)
        if raw is None:
            return None
        targets = [u for u in r.refs(prop) if u in self.logical]
        if targets and (all(v == UNKNOWN for v in raw) or len(raw) == len(targets)):
            return [{"Fn::GetAtt": [self.logical[u], "Arn"]} if arn else {"Ref": self.logical[u]} for u in targets]
        return [v for v in raw if v != UNKNOWN]


def drop_none(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


def first(v: Any) -> dict[str, Any]:
    """A nested block Pulumi may carry as an object or as a one-element list."""
    if isinstance(v, list):
        v = v[0] if v else {}
    return v if isinstance(v, dict) else {}


Spec = dict[str, "str | tuple[str, Any]"]  # CloudFormation property <- "input[@ref|@arn|@refs]" (, default)
SIMPLE: dict[str, tuple[str, Spec]] = {
    "aws:ec2/vpc:Vpc": (
        "AWS::EC2::VPC",
        {
            "CidrBlock": "cidrBlock",
            "EnableDnsSupport": "enableDnsSupport",
            "EnableDnsHostnames": "enableDnsHostnames",
            "InstanceTenancy": "instanceTenancy",
        },
    ),
    "aws:ec2/subnet:Subnet": (
        "AWS::EC2::Subnet",
        {
            "VpcId": "vpcId@ref",
            "CidrBlock": "cidrBlock",
            "AvailabilityZone": "availabilityZone",
            "MapPublicIpOnLaunch": "mapPublicIpOnLaunch",
        },
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        "AWS::Logs::LogGroup",
        {"LogGroupName": "name", "RetentionInDays": "retentionInDays", "KmsKeyId": "kmsKeyId@arn"},
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": "name",
            "ComparisonOperator": "comparisonOperator",
            "EvaluationPeriods": "evaluationPeriods",
            "MetricName": "metricName",
            "Namespace": "namespace",
            "Threshold": "threshold",
            "ActionsEnabled": "actionsEnabled",
            "AlarmActions": "alarmActions@refs",
            "OKActions": "okActions@refs",
            "InsufficientDataActions": "insufficientDataActions@refs",
        },
    ),
    "aws:cloudtrail/trail:Trail": (
        "AWS::CloudTrail::Trail",
        {
            "TrailName": "name",
            "IsLogging": ("enableLogging", True),
            "S3BucketName": "s3BucketName@ref",
            "KMSKeyId": "kmsKeyId@arn",
            "EnableLogFileValidation": "enableLogFileValidation",
            "IsMultiRegionTrail": "isMultiRegionTrail",
            "CloudWatchLogsLogGroupArn": "cloudWatchLogsGroupArn@arn",
            "CloudWatchLogsRoleArn": "cloudWatchLogsRoleArn@arn",
        },
    ),
    "aws:sns/topic:Topic": ("AWS::SNS::Topic", {"TopicName": "name", "KmsMasterKeyId": "kmsMasterKeyId@ref"}),
    "aws:sagemaker/notebookInstance:NotebookInstance": (
        "AWS::SageMaker::NotebookInstance",
        {
            "InstanceType": "instanceType",
            "RoleArn": "roleArn@arn",
            "KmsKeyId": "kmsKeyId@arn",
            "DirectInternetAccess": "directInternetAccess",
            "SubnetId": "subnetId@ref",
        },
    ),
    "aws:lambda/permission:Permission": (
        "AWS::Lambda::Permission",
        {
            "Action": "action",
            "FunctionName": "function@ref",
            "Principal": "principal",
            "SourceArn": "sourceArn",
            "SourceAccount": "sourceAccount",
            "PrincipalOrgID": "principalOrgId",
        },
    ),
    "aws:secretsmanager/secret:Secret": ("AWS::SecretsManager::Secret", {"Name": "name", "KmsKeyId": "kmsKeyId@arn"}),
    "aws:secretsmanager/secretRotation:SecretRotation": (
        "AWS::SecretsManager::RotationSchedule",
        {"SecretId": "secretId@ref", "RotationLambdaARN": "rotationLambdaArn@arn"},
    ),
}


def _simple(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    cfn_type, spec = SIMPLE[r.type]
    props = {}
    for cfn_prop, source in spec.items():
        path, default = source if isinstance(source, tuple) else (source, None)
        prop, _, kind = path.partition("@")
        if kind == "refs":
            props[cfn_prop] = ctx.links(r, prop)
        elif kind:
            props[cfn_prop] = ctx.link(r, prop, arn=kind == "arn")
        else:
            props[cfn_prop] = ctx.val(r, prop, default)
    return cfn_type, drop_none(props)


def doc(text: Any) -> dict[str, Any] | None:
    """A policy document: Pulumi carries JSON text; CloudFormation wants the object (a fresh copy)."""
    if isinstance(text, dict):
        return json.loads(json.dumps(text, sort_keys=True))
    if not isinstance(text, str) or UNKNOWN in text:
        return None  # unknown until apply
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    # keys sorted, as CDK renders statements: the pack's IAM rules match `"Action":...,"Effect":"Allow",...`
    return json.loads(json.dumps(parsed, sort_keys=True)) if isinstance(parsed, dict) else None


def _sg_rules(rules: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Pulumi's rule (many CIDRs) -> one CloudFormation rule per CIDR, as the pack tests `CidrIp`."""
    out = []
    protocols = {"all": "-1", "6": "tcp", "17": "udp", "1": "icmp"}
    for rule in rules or []:
        protocol = rule.get("protocol")
        base = drop_none(
            {
                "IpProtocol": protocols.get(str(protocol), protocol),
                "FromPort": rule.get("fromPort"),
                "ToPort": rule.get("toPort"),
                "Description": rule.get("description"),
            }
        )
        cidrs = [("CidrIp", c) for c in rule.get("cidrBlocks") or []]
        cidrs += [("CidrIpv6", c) for c in rule.get("ipv6CidrBlocks") or []]
        if not cidrs:  # source is another group, itself or a prefix list: no CIDR for the pack to judge
            cidrs = [("SourceSecurityGroupId", "peer-security-group")]
        out += [{**base, key: cidr} for key, cidr in cidrs]
    return out


def _security_group(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    return "AWS::EC2::SecurityGroup", drop_none(
        {
            "GroupDescription": ctx.val(r, "description", "Managed by Pulumi"),
            "VpcId": ctx.link(r, "vpcId"),
            "SecurityGroupIngress": _sg_rules(ctx.val(r, "ingress")),
            "SecurityGroupEgress": _sg_rules(ctx.val(r, "egress")),
        }
    )


def _ingress_rule(ctx: Ctx, r: PlanResource) -> list[tuple[str, dict[str, Any]]]:
    """`aws:vpc/securityGroupIngressRule` and `aws:ec2/securityGroupRule` (type=ingress) alike."""
    if r.type.startswith("aws:ec2/") and ctx.val(r, "type") != "ingress":
        return []  # egress: the pack judges ingress only
    rule = {
        "protocol": ctx.val(r, "protocol", ctx.val(r, "ipProtocol")),
        "fromPort": ctx.val(r, "fromPort"),
        "toPort": ctx.val(r, "toPort"),
        "cidrBlocks": ctx.val(r, "cidrBlocks") or [ctx.val(r, "cidrIpv4")],
        "ipv6CidrBlocks": [ctx.val(r, "cidrIpv6")],
    }
    rule["cidrBlocks"] = [c for c in rule["cidrBlocks"] if c]
    rule["ipv6CidrBlocks"] = [c for c in rule["ipv6CidrBlocks"] if c]
    group = ctx.link(r, "securityGroupId")
    return [("AWS::EC2::SecurityGroupIngress", {**one, "GroupId": group}) for one in _sg_rules([rule])]


def _flow_log(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    targets = (("VPC", "vpcId"), ("Subnet", "subnetId"), ("NetworkInterface", "eniId"))
    kind, prop = next(((k, p) for k, p in targets if p in r.inputs or r.refs(p)), targets[0])
    return "AWS::EC2::FlowLog", drop_none(
        {
            "ResourceId": ctx.link(r, prop),
            "ResourceType": kind,
            "TrafficType": ctx.val(r, "trafficType"),
            "LogDestinationType": ctx.val(r, "logDestinationType"),
            "LogDestination": ctx.link(r, "logDestination", True),
            "DeliverLogsPermissionArn": ctx.link(r, "iamRoleArn", True),
        }
    )


def _routes(ctx: Ctx, r: PlanResource) -> list[tuple[str, dict[str, Any]]]:
    """A route table's inline routes (or one `aws:ec2/route`) -> one AWS::EC2::Route each; the table has no
    rule of its own."""
    routes = (ctx.val(r, "routes") or []) if r.type.endswith("routeTable:RouteTable") else [r.inputs]
    keys = {
        "GatewayId": "gatewayId",
        "NatGatewayId": "natGatewayId",
        "VpcEndpointId": "vpcEndpointId",
        "TransitGatewayId": "transitGatewayId",
        "VpcPeeringConnectionId": "vpcPeeringConnectionId",
    }
    return [
        (
            "AWS::EC2::Route",
            drop_none(
                {
                    "RouteTableId": "route-table",
                    "DestinationCidrBlock": route.get("cidrBlock") or route.get("destinationCidrBlock"),
                    "DestinationIpv6CidrBlock": route.get("ipv6CidrBlock") or route.get("destinationIpv6CidrBlock"),
                    **{cfn: route.get(key) for cfn, key in keys.items()},
                }
            ),
        )
        for route in routes
    ]


def _role(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    inline = [
        {"PolicyName": p.get("name") or "inline", "PolicyDocument": doc(p.get("policy"))}
        for p in ctx.val(r, "inlinePolicies") or []
        if doc(p.get("policy"))
    ]
    return "AWS::IAM::Role", drop_none(
        {
            "RoleName": ctx.val(r, "name"),
            "AssumeRolePolicyDocument": doc(ctx.val(r, "assumeRolePolicy")) or {},
            "ManagedPolicyArns": ctx.val(r, "managedPolicyArns"),
            "Policies": inline,
            "PermissionsBoundary": ctx.link(r, "permissionsBoundary", arn=True),
        }
    )


def _policy(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]] | None:
    document = doc(ctx.val(r, "policy"))
    if document is None:
        return None  # unknown until apply: nothing for the pack to read
    if r.type == "aws:iam/rolePolicy:RolePolicy":  # an inline policy, which the pack flags as such
        props = {"PolicyName": ctx.val(r, "name") or r.name, "PolicyDocument": document, "Roles": [ctx.link(r, "role")]}
        return "AWS::IAM::Policy", props
    return "AWS::IAM::ManagedPolicy", drop_none({"ManagedPolicyName": ctx.val(r, "name"), "PolicyDocument": document})


def _bucket_policy(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]] | None:
    document = doc(ctx.val(r, "policy"))
    if document is None:
        return None
    bucket = next((ctx.plan.by_urn[u] for u in r.refs("bucket") if u in ctx.logical), None)
    if bucket is not None and ctx.val(bucket, "bucket"):
        document = _own_arns(document, ctx.val(bucket, "bucket"), ctx.logical[bucket.urn])
    return "AWS::S3::BucketPolicy", {"Bucket": ctx.link(r, "bucket"), "PolicyDocument": document}


def _own_arns(document: dict[str, Any], name: str, lid: str) -> dict[str, Any]:
    """The bucket's own ARNs in its policy, written as CDK writes them (GetAtt, Join): the pack matches a
    policy's resources to its bucket by logical id, and the policy's ARNs were computed from the bucket."""
    arn = f"arn:aws:s3:::{name}"

    def swap(v: Any) -> Any:
        if v == arn:
            return {"Fn::GetAtt": [lid, "Arn"]}
        if isinstance(v, str) and v.startswith(arn + "/"):
            return {"Fn::Join": ["", [{"Fn::GetAtt": [lid, "Arn"]}, v[len(arn) :]]]}
        return v

    statements = document.get("Statement")
    for st in statements if isinstance(statements, list) else [statements]:
        if isinstance(st, dict) and "Resource" in st:
            res = st["Resource"]
            st["Resource"] = [swap(v) for v in res] if isinstance(res, list) else swap(res)
    return document


def _endpoint_config(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    keys = {
        "VariantName": "variantName",
        "InstanceType": "instanceType",
        "InitialInstanceCount": "initialInstanceCount",
        "InitialVariantWeight": "initialVariantWeight",
    }
    variants = [
        drop_none({cfn: v.get(key) for cfn, key in keys.items()}) for v in ctx.val(r, "productionVariants") or []
    ]
    return "AWS::SageMaker::EndpointConfig", drop_none(
        {
            "EndpointConfigName": ctx.val(r, "name"),
            "KmsKeyId": ctx.link(r, "kmsKeyArn", arn=True),
            "ProductionVariants": variants,
        }
    )


def _function(ctx: Ctx, r: PlanResource) -> tuple[str, dict[str, Any]]:
    vpc, dlq = first(ctx.val(r, "vpcConfig")), first(ctx.val(r, "deadLetterConfig"))
    return "AWS::Lambda::Function", drop_none(
        {
            "Role": ctx.link(r, "role", arn=True),
            "Runtime": ctx.val(r, "runtime"),
            "Handler": ctx.val(r, "handler"),
            "Code": {"ZipFile": "code is not part of the plan"},
            "ReservedConcurrentExecutions": ctx.val(r, "reservedConcurrentExecutions"),
            "DeadLetterConfig": drop_none({"TargetArn": ctx.link(r, "deadLetterConfig", True, dlq.get("targetArn"))}),
            "VpcConfig": drop_none(
                {"SubnetIds": vpc.get("subnetIds"), "SecurityGroupIds": vpc.get("securityGroupIds")}
            ),
            "KmsKeyArn": ctx.link(r, "kmsKeyArn", arn=True),
        }
    )


Made = tuple[str, dict[str, Any]] | list[tuple[str, dict[str, Any]]] | None
CONVERTERS: dict[str, Callable[[Ctx, PlanResource], Made]] = {
    **dict.fromkeys(SIMPLE, _simple),
    "aws:ec2/flowLog:FlowLog": _flow_log,
    "aws:ec2/routeTable:RouteTable": _routes,
    "aws:ec2/route:Route": _routes,
    "aws:ec2/securityGroup:SecurityGroup": _security_group,
    "aws:ec2/securityGroupRule:SecurityGroupRule": _ingress_rule,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _ingress_rule,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _policy,
    "aws:iam/policy:Policy": _policy,
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_policy,
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": _endpoint_config,
    "aws:lambda/function:Function": _function,
}
