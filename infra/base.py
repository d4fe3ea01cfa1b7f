"""Conventions every platform component shares: naming, tags, resource options, IAM documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from clinops.config import StackConfig

Statement = dict[str, Any]


@dataclass(frozen=True)
class Platform:
    """What every component needs to know about the stack it belongs to."""

    config: StackConfig

    @property
    def prefix(self) -> str:
        return f"clinops-{self.config.stack}"

    @property
    def account(self) -> str:
        return self.config.account_id

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def account_root(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    def role_arn(self, role_name: str) -> str:
        """A role's ARN is known before the role exists, which lets key policies name it without a cycle."""
        return f"arn:aws:iam::{self.account}:role/{role_name}"

    def schedule_arn(self, name: str) -> str:
        """EventBridge Scheduler schedules of the platform live in the default group."""
        return f"arn:aws:scheduler:{self.region}:{self.account}:schedule/default/{name}"

    def bucket_name(self, purpose: str, account: str | None = None, stack: str | None = None) -> str:
        return f"clinops-{stack or self.config.stack}-{account or self.account}-{purpose}"

    @property
    def promotes_from_registry(self) -> bool:
        """Staging and prod serve packages trained, and stored, in the build (registry) account."""
        return self.config.registry_account != self.account

    def registry_artifacts_bucket_arn(self) -> str:
        """The build account's model-artifacts bucket (its `dev` stack), where promoted packages' models live."""
        return f"arn:aws:s3:::{self.bucket_name('model-artifacts', self.config.registry_account, 'dev')}"

    def registry_artifacts_key_alias(self) -> str:
        """The build account's artifacts key is known here only by its alias (its key id is random)."""
        return "alias/clinops-dev-artifacts"

    def tags(self, **extra: str) -> dict[str, str]:
        return {**self.config.resource_tags(), **extra}

    def child(self, parent: pulumi.Resource, *, stateful: bool = False, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for a child resource. Stateful resources are protected and retained where config says so."""
        keep = stateful and self.config.retain_on_delete
        retain = kwargs.pop("retain_on_delete", keep)
        return pulumi.ResourceOptions(parent=parent, protect=keep, retain_on_delete=retain, **kwargs)


def policy_document(*statements: Statement) -> pulumi.Output[str]:
    """An IAM policy JSON string; statements may hold Outputs. Keys sorted so renders are byte-stable."""
    return pulumi.Output.from_input({"Version": "2012-10-17", "Statement": list(statements)}).apply(
        lambda doc: _dumps(doc)
    )


def policy_json(*statements: Statement) -> str:
    """The same string as `policy_document` for statements of plain values (e.g. to measure it before a render)."""
    return _dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _dumps(doc: Any) -> str:
    import json

    return json.dumps(doc, sort_keys=True)


def allow(sid: str, actions: list[str], resources: Any, **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources, **extra}


def deny(sid: str, actions: list[str], resources: Any = "*", **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Deny", "Action": sorted(actions), "Resource": resources, **extra}


def service_trust(service: str, account: str, source_arn: str | None = None) -> pulumi.Output[str]:
    """Trust policy for an AWS service, confused-deputy safe (aws:SourceAccount, optionally aws:SourceArn)."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account}}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return policy_document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", "Condition": condition}
    )


def tracing_statement() -> Statement:
    """Active X-Ray tracing sends segments as the function's role; X-Ray cannot scope these to a resource."""
    return allow("SendTraces", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "*")


def vpc_network_interface_statements(platform: Platform) -> list[Statement]:
    """What a VPC-attached job or Lambda needs for its ENIs: writes scoped to this account's network
    resources; the Describe calls, which IAM cannot scope to a resource, on "*"."""
    where = f"arn:aws:ec2:{platform.region}:{platform.account}"
    return [
        allow(
            "ManageOwnNetworkInterfaces",
            [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
                "ec2:UnassignPrivateIpAddresses",
            ],
            [f"{where}:network-interface/*", f"{where}:subnet/*", f"{where}:security-group/*"],
        ),
        allow(
            "DescribeNetwork",
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            "*",
        ),
    ]
