"""The two log recipes every component repeats: a KMS-encrypted, retained log group and a service role that
delivers into it (trust scoped to the account and the source, under the permissions boundary)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.base import Platform, Statement, policy_document, service_trust


def encrypted_log_group(
    resource_name: str, platform: Platform, parent: pulumi.Resource, log_name: str, logs_key: aws.kms.Key, **tags: str
) -> aws.cloudwatch.LogGroup:
    cfg = platform.config
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=log_name,
        retention_in_days=cfg.log_retention_days,
        kms_key_id=logs_key.arn,
        deletion_protection_enabled=cfg.retain_on_delete,
        tags=platform.tags(**tags),
        opts=platform.child(parent, stateful=True),
    )


def delivery_role(
    resource_name: str,
    platform: Platform,
    parent: pulumi.Resource,
    *,
    role_name: str,
    service: str,
    source_arn: str,
    boundary_arn: pulumi.Input[str],
    statement: Statement,
) -> aws.iam.Role:
    child = platform.child(parent)
    role = aws.iam.Role(
        f"{resource_name}-role",
        name=role_name,
        assume_role_policy=service_trust(service, platform.account, source_arn),
        permissions_boundary=boundary_arn,
        tags=platform.tags(),
        opts=child,
    )
    aws.iam.RolePolicy(f"{resource_name}-delivery", role=role.id, policy=policy_document(statement), opts=child)
    return role
