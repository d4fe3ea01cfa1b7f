"""Pulumi component for the synthetic-traffic canary: a VPC Lambda ticking every minute (handler:
serving/guardrails/canary.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_aws as aws

from clinops.names import canary_function_name
from infra.base import (
    Platform,
    allow,
    policy_document,
    service_trust,
    tracing_statement,
    vpc_network_interface_statements,
)
from infra.logs import encrypted_log_group
from pipelines.contracts.synthetic import canary_payload_csv

ROOT = Path(__file__).resolve().parents[1]
# the handler and the one clinops module it imports (how synthetic traffic is marked), at the archive's root
ARCHIVE_FILES = {
    "handler.py": ROOT / "serving" / "guardrails" / "canary.py",
    "clinops/__init__.py": ROOT / "clinops" / "__init__.py",
    "clinops/traffic.py": ROOT / "clinops" / "traffic.py",
}
REQUESTS_PER_TICK = 30


class SyntheticTrafficCanary(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: str,
        endpoint: aws.sagemaker.Endpoint,
        subnet_ids: Sequence[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
        logs_key: aws.kms.Key,
        boundary_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:SyntheticTrafficCanary", name, None, opts)
        child = platform.child(self)
        function_name = canary_function_name(platform.config.stack, model)
        log_group = encrypted_log_group(
            f"{model}-canary-logs", platform, self, f"/aws/lambda/{function_name}", logs_key
        )
        role = aws.iam.Role(
            f"{model}-canary-role",
            name=function_name,
            assume_role_policy=service_trust("lambda.amazonaws.com", platform.account),
            permissions_boundary=boundary_arn,
            tags=platform.tags(),
            opts=child,
        )
        permissions_policy = aws.iam.RolePolicy(
            f"{model}-canary-permissions",
            role=role.id,
            policy=policy_document(
                allow(
                    "WatchAndExerciseEndpoint", ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"], endpoint.arn
                ),
                allow(
                    "WriteOwnLogs",
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    log_group.arn.apply(lambda a: f"{a}:*"),
                ),
                tracing_statement(),
                *vpc_network_interface_statements(platform),
            ),
            opts=child,
        )
        self.function = aws.lambda_.Function(
            f"{model}-canary",
            name=function_name,
            runtime="python3.12",
            handler="handler.handler",
            code=pulumi.AssetArchive({name: pulumi.FileAsset(str(path)) for name, path in ARCHIVE_FILES.items()}),
            role=role.arn,
            timeout=50,
            memory_size=256,
            reserved_concurrent_executions=1 if platform.config.lambda_reserved_concurrency else None,
            kms_key_arn=logs_key.arn,
            tracing_config={"mode": "Active"},
            environment={
                "variables": {
                    "ENDPOINT_NAME": endpoint.name,
                    "CANARY_PAYLOAD": canary_payload_csv(model),
                    "CANARY_REQUESTS": str(REQUESTS_PER_TICK),
                }
            },
            vpc_config={"subnet_ids": subnet_ids, "security_group_ids": [security_group_id]},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            tags=platform.tags(**{"clinops:model": model}),
            # CreateFunction checks the role's ENI permissions: the policy must exist first.
            opts=platform.child(self, depends_on=[log_group, permissions_policy]),
        )
        tick = aws.cloudwatch.EventRule(
            f"{model}-canary-tick",
            name=function_name,
            schedule_expression="rate(1 minute)",
            description=f"send synthetic requests to {model} while a deployment is in progress",
            tags=platform.tags(),
            opts=child,
        )
        aws.cloudwatch.EventTarget(f"{model}-canary-target", rule=tick.name, arn=self.function.arn, opts=child)
        aws.lambda_.Permission(
            f"{model}-canary-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="events.amazonaws.com",
            source_arn=tick.arn,
            opts=child,
        )
        self.register_outputs({"functionName": self.function.name})
