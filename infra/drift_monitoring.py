"""Drift monitoring in the cloud: per model, the daily monitoring pipeline (`pipelines.definitions.monitoring`)
as a SageMaker pipeline, started daily by EventBridge Scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig
from clinops.names import drift_pipeline_name, drift_scheduler_role_name
from infra.base import Platform
from infra.scheduled import ScheduledPipeline, schedule_pipeline
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
        schedule_pipeline(
            self,
            platform,
            ScheduledPipeline(
                model=model.name,
                kind="drift",
                pipeline_name=pipeline_name,
                scheduler_role_name=drift_scheduler_role_name(platform.config.stack, model.name),
                description=f"Daily drift and outcome backtest of {model.name}'s captured inferences",
                start_sid="StartDriftPipeline",
                role_arn=args.role_arn,
                definition=definition,
                schedule=cfg.schedule,
                schedule_key=args.schedule_key,
                boundary_arn=args.boundary_arn,
                parameters={"CaptureUri": args.capture_bucket.apply(lambda b: f"s3://{b}/{model.name}/")},
            ),
        )
        self.register_outputs({"pipelineName": pipeline_name})
