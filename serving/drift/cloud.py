"""Drift monitoring in the cloud: per model, a SageMaker pipeline of two Processing jobs, started daily by
EventBridge Scheduler.

1. `DriftShards` — N instances in the private subnets, each given a share of the capture files
   (`ShardedByS3Key`), write mergeable per-feature counts (`clinops drift partial`), network-isolated.
2. `DriftMerge` — one instance merges the counts, judges drift and publishes `clinops/drift` metrics
   (`clinops drift merge --publish`); it needs the CloudWatch API, reached through the VPC endpoint only.
3. `QualityBacktest` — beside them, joins adjudicated outcomes to captured inferences and publishes the
   rolling `clinops/quality` metrics (`clinops quality run --publish`); same network needs as the merge.

A run that finds drift or decay publishes first, then ends Failed (the CLIs exit 1), so it shows in SageMaker
as well as in the alarms.

The definition is plain pipeline JSON, checked against botocore's CreateProcessingJob shape before use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig
from infra.base import Platform, allow, policy_document, service_trust
from pipelines.definition_checks import validate_against_service_model

PROCESSING = "/opt/ml/processing"


@dataclass(frozen=True)
class DriftJobSettings:
    model: str
    role_arn: str
    image_uri: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    phi_key_arn: str
    artifacts_key_arn: str  # reports go to the artifact bucket, which accepts only its own key
    capture_bucket: str
    artifact_bucket: str
    data_bucket: str
    instance_type: str
    instance_count: int


def _job(
    s: DriftJobSettings,
    count: int,
    command: list[str],
    inputs: list[dict],
    outputs: list[dict],
    isolated: bool,
    output_key_arn: str,
    module: str = "serving.drift.cli",
) -> dict[str, Any]:
    return {
        "RoleArn": s.role_arn,
        "AppSpecification": {
            "ImageUri": s.image_uri,
            "ContainerEntrypoint": ["python3", "-m", module, *command],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": count,
                "InstanceType": s.instance_type,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": s.phi_key_arn,
            }
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs, "KmsKeyId": output_key_arn},
        "NetworkConfig": {
            "EnableNetworkIsolation": isolated,
            "EnableInterContainerTrafficEncryption": True,
            "VpcConfig": {"Subnets": list(s.subnet_ids), "SecurityGroupIds": [s.security_group_id]},
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def _s3_input(name: str, uri: Any, distribution: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{PROCESSING}/{name}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
        },
    }


def monitoring_definition(s: DriftJobSettings) -> str:
    run = {"Get": "Execution.PipelineExecutionId"}
    partials = {"Std:Join": {"On": "/", "Values": [f"s3://{s.data_bucket}/{s.model}/drift", run, "partials"]}}
    report = {"Std:Join": {"On": "/", "Values": [f"s3://{s.artifact_bucket}/{s.model}/drift", run, "report"]}}
    quality_report = {"Std:Join": {"On": "/", "Values": [f"s3://{s.artifact_bucket}/{s.model}/quality", run, "report"]}}
    baseline = f"s3://{s.artifact_bucket}/{s.model}/baseline/"
    shards = _job(
        s,
        s.instance_count,
        [
            "partial",
            "--baseline",
            f"{PROCESSING}/baseline",
            "--capture",
            f"{PROCESSING}/capture",
            "--out",
            f"{PROCESSING}/partials",
        ],
        [
            _s3_input("baseline", baseline, "FullyReplicated"),
            _s3_input("capture", {"Get": "Parameters.CaptureUri"}, "ShardedByS3Key"),
        ],
        [
            {
                "OutputName": "partials",
                "S3Output": {"S3Uri": partials, "LocalPath": f"{PROCESSING}/partials", "S3UploadMode": "EndOfJob"},
            }
        ],
        isolated=True,
        output_key_arn=s.phi_key_arn,  # per-shard counts stay beside the PHI they summarise
    )
    merge = _job(
        s,
        1,
        [
            "merge",
            "--baseline",
            f"{PROCESSING}/baseline",
            "--partials",
            f"{PROCESSING}/partials",
            "--out",
            f"{PROCESSING}/report",
            "--publish",
        ],
        [
            _s3_input("baseline", baseline, "FullyReplicated"),
            _s3_input(
                "partials",
                {"Get": "Steps.DriftShards.ProcessingOutputConfig.Outputs['partials'].S3Output.S3Uri"},
                "FullyReplicated",
            ),
        ],
        [
            {
                "OutputName": "report",
                "S3Output": {"S3Uri": report, "LocalPath": f"{PROCESSING}/report", "S3UploadMode": "EndOfJob"},
            }
        ],
        isolated=False,
        output_key_arn=s.artifacts_key_arn,
    )
    quality = _job(
        s,
        1,
        [
            "run",
            "--baseline",
            f"{PROCESSING}/baseline",
            "--capture",
            f"{PROCESSING}/capture",
            "--outcomes",
            f"{PROCESSING}/outcomes",
            "--out",
            f"{PROCESSING}/quality",
            "--publish",
        ],
        [
            _s3_input("baseline", baseline, "FullyReplicated"),
            _s3_input("capture", {"Get": "Parameters.CaptureUri"}, "FullyReplicated"),
            _s3_input("outcomes", {"Get": "Parameters.OutcomesUri"}, "FullyReplicated"),
        ],
        [
            {
                "OutputName": "quality",
                "S3Output": {"S3Uri": quality_report, "LocalPath": f"{PROCESSING}/quality", "S3UploadMode": "EndOfJob"},
            }
        ],
        isolated=False,
        output_key_arn=s.artifacts_key_arn,
        module="serving.quality.cli",
    )
    definition = {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {"Name": "CaptureUri", "Type": "String", "DefaultValue": f"s3://{s.capture_bucket}/{s.model}/"},
            # adjudicated outcomes (inference_id, outcome, outcome_time) land here from the hospital's feed
            {"Name": "OutcomesUri", "Type": "String", "DefaultValue": f"s3://{s.data_bucket}/{s.model}/outcomes/"},
        ],
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": [
            {"Name": "DriftShards", "Type": "Processing", "Arguments": shards},
            {"Name": "DriftMerge", "Type": "Processing", "Arguments": merge, "DependsOn": ["DriftShards"]},
            {"Name": "QualityBacktest", "Type": "Processing", "Arguments": quality},
        ],
    }
    validate_against_service_model(definition)
    return json.dumps(definition, sort_keys=True)


def drift_pipeline_name(platform: Platform, model: str) -> str:
    """Also the name of the schedule that starts it."""
    return f"{platform.prefix}-{model}-drift"


def scheduler_role_name(platform: Platform, model: str) -> str:
    """The schedule's execution role: it starts the pipeline and decrypts the schedule (logs key)."""
    return f"{drift_pipeline_name(platform, model)}-scheduler"


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
        pipeline_name = drift_pipeline_name(platform, model.name)
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
            name=scheduler_role_name(platform, model.name),
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
