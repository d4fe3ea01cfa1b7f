"""The daily monitoring pipeline's definition (SageMaker Pipelines JSON) for one model.

1. `DriftShards` — N instances in the private subnets, each given a share of the capture files
   (`ShardedByS3Key`), write mergeable per-feature counts (`clinops drift partial`), network-isolated.
2. `DriftMerge` — one instance merges the counts, judges drift and publishes `clinops/drift` metrics
   (`clinops drift merge --publish`); it needs the CloudWatch API, reached through the VPC endpoint only.
3. `QualityBacktest` — beside them, joins adjudicated outcomes to captured inferences and publishes the
   rolling `clinops/quality` metrics (`clinops quality run --publish`); same network needs as the merge.

A run that finds drift or decay publishes first, then ends Failed (the CLIs exit 1), so it shows in SageMaker
as well as in the alarms. The definition is plain pipeline JSON, checked against botocore's CreateProcessingJob
shape before use; `infra.drift_monitoring` provisions it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines.definitions.checks import validate_against_service_model
from pipelines.jobpaths import PROCESSING_ROOT as PROCESSING


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
    module: str = "pipelines.monitoring.drift.cli",
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
        module="pipelines.monitoring.quality.cli",
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
