"""Drift monitoring in the cloud: per model, the daily monitoring pipeline (`pipelines.definitions.monitoring`)
as a SageMaker pipeline, started daily by EventBridge Scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig
from clinops.names import drift_pipeline_name, drift_scheduler_role_name
from infra.base import Platform, allow, policy_document, service_trust
from pipelines.definitions.monitoring import DriftJobSettings, monitoring_definition


@dataclass(frozen=True)
class DriftMonitoringArgs:
    role_arn: pulumi.Output[str]
    image_uri: str
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    phi_key: aws.kms.Key
    artifacts_key: aws.kms.Key
    capture_bucket: pulumi.Output[str]
    artifact_bucket: pulumi.Output[str]
    data_bucket: pulumi.Output[str]
    boundary_arn: pulumi.Output[str]
    schedule_key: aws.kms.Key


class DriftMonitoring(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: ModelConfig,
        args: DriftMonitoringArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:DriftMonitoring", name, None, opts)
        cfg = model.monitoring
        definition = pulumi.Output.all(
            role=args.role_arn,
            subnets=pulumi.Output.all(*args.subnet_ids),
            sg=args.security_group_id,
            phi=args.phi_key.arn,
            artifacts_key=args.artifacts_key.arn,
            capture=args.capture_bucket,
            artifacts=args.artifact_bucket,
            data=args.data_bucket,
        ).apply(
            lambda v: monitoring_definition(
                DriftJobSettings(
                    model=model.name,
                    role_arn=v["role"],
                    image_uri=args.image_uri,
                    subnet_ids=tuple(v["subnets"]),
                    security_group_id=v["sg"],
                    phi_key_arn=v["phi"],
                    artifacts_key_arn=v["artifacts_key"],
                    capture_bucket=v["capture"],
                    artifact_bucket=v["artifacts"],
                    data_bucket=v["data"],
                    instance_type=cfg.drift_instance_type,
                    instance_count=cfg.drift_instances,
                )
            )
        )
        pipeline_name = drift_pipeline_name(platform.config.stack, model.name)
        pipeline = aws.sagemaker.Pipeline(
            f"{model.name}-drift-pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=f"Daily drift and outcome backtest of {model.name}'s captured inferences",
            role_arn=args.role_arn,
            pipeline_definition=definition,
            tags=platform.tags(**{"clinops:model": model.name}),
            opts=platform.child(self),
        )
        role = aws.iam.Role(
            f"{model.name}-drift-scheduler-role",
            name=drift_scheduler_role_name(platform.config.stack, model.name),
            assume_role_policy=service_trust("scheduler.amazonaws.com", platform.account),
            permissions_boundary=args.boundary_arn,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.iam.RolePolicy(
            f"{model.name}-drift-scheduler-permissions",
            role=role.id,
            policy=policy_document(
                allow("StartDriftPipeline", ["sagemaker:StartPipelineExecution"], pipeline.arn),
                # the schedule is encrypted with a customer managed key: its execution role decrypts it
                allow("DecryptSchedule", ["kms:Decrypt"], args.schedule_key.arn),
            ),
            opts=platform.child(self),
        )
        aws.scheduler.Schedule(
            f"{model.name}-drift-schedule",
            name=pipeline_name,
            schedule_expression=cfg.schedule,
            schedule_expression_timezone="UTC",
            flexible_time_window={"mode": "FLEXIBLE", "maximum_window_in_minutes": 30},
            kms_key_arn=args.schedule_key.arn,
            target={
                "arn": pipeline.arn,
                "role_arn": role.arn,
                "retry_policy": {"maximum_retry_attempts": 3},
                "sagemaker_pipeline_parameters": {
                    "pipeline_parameters": [
                        {"name": "CaptureUri", "value": args.capture_bucket.apply(lambda b: f"s3://{b}/{model.name}/")}
                    ]
                },
            },
            opts=platform.child(self),
        )
        self.register_outputs({"pipelineName": pipeline_name})
