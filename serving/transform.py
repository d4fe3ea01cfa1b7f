"""Nightly batch scoring in the cloud: per model, a SageMaker pipeline with one Batch Transform step, started on a
schedule by EventBridge Scheduler and on demand (`start_batch_scoring`, or StartPipelineExecution with another
`InputUri`).

The transform runs the endpoint's own SageMaker Model (`ModelEndpoint.pinned_model`): the same image, model
package (bundle and contract) and container environment, in the private subnets with network isolation, as the
Model declares them. Its input is read from the PHI bucket (`s3://<phi-data>/<model>/batch/input/`, the day's
extract: headerless CSV lines `record_id,<feature columns in the contract's order>`); SageMaker strips the id
before the container sees the row (`InputFilter $[1:]`), then joins the container's score back to the input line
and keeps `record_id,score` (`JoinSource=Input`, `OutputFilter $[0,-1]`). So ids never reach the container or its
logs, and scores land beside their ids in the PHI bucket (`.../batch/output/<execution>/`), encrypted with the
PHI key, as is the instances' storage volume.

The definition is plain pipeline JSON, checked against botocore's CreateTransformJob shape before use.
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
from serving.container.settings import DEFAULT_MAX_BODY_BYTES

STEP = "BatchScore"
MAX_PAYLOAD_MB = DEFAULT_MAX_BODY_BYTES // (1024 * 1024)  # mini-batches within the container's body limit
INVOCATION_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class TransformSettings:
    model: str
    model_name: str  # the endpoint's SageMaker Model (image, package, VPC, network isolation)
    phi_key_arn: str
    data_bucket: str  # the PHI bucket: input extracts and scored output
    instance_type: str
    instance_count: int


def input_uri(data_bucket: str, model: str) -> str:
    return f"s3://{data_bucket}/{model}/batch/input/"


def transform_arguments(s: TransformSettings) -> dict[str, Any]:
    output = {
        "Std:Join": {
            "On": "/",
            "Values": [f"s3://{s.data_bucket}/{s.model}/batch/output", {"Get": "Execution.PipelineExecutionId"}],
        }
    }
    return {
        "ModelName": s.model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_SECONDS, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": {"Get": "Parameters.InputUri"}}},
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": output,
            "Accept": "text/csv",
            "AssembleWith": "Line",
            "KmsKeyId": s.phi_key_arn,
        },
        "TransformResources": {
            "InstanceType": s.instance_type,
            "InstanceCount": s.instance_count,
            "VolumeKmsKeyId": s.phi_key_arn,
        },
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    }


def scoring_definition(s: TransformSettings) -> str:
    definition = {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [{"Name": "InputUri", "Type": "String", "DefaultValue": input_uri(s.data_bucket, s.model)}],
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": [{"Name": STEP, "Type": "Transform", "Arguments": transform_arguments(s)}],
    }
    validate_against_service_model(definition)
    return json.dumps(definition, sort_keys=True)


def pipeline_name(prefix: str, model: str) -> str:
    return f"{prefix}-{model}-batch-scoring"


def start_batch_scoring(client: Any, name: str, input_s3_uri: str | None = None) -> str:
    """On-demand run (a re-score, a backfill): the scheduled pipeline, optionally on another input prefix."""
    parameters = [{"Name": "InputUri", "Value": input_s3_uri}] if input_s3_uri else []
    response = client.start_pipeline_execution(
        PipelineName=name, PipelineParameters=parameters, PipelineExecutionDescription="on-demand batch scoring"
    )
    return str(response["PipelineExecutionArn"])


@dataclass(frozen=True)
class BatchScoringArgs:
    role_arn: pulumi.Output[str]
    model_name: pulumi.Output[str]
    phi_key: aws.kms.Key
    data_bucket: pulumi.Output[str]
    boundary_arn: pulumi.Output[str]
    schedule_key: aws.kms.Key


class BatchScoring(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: ModelConfig,
        args: BatchScoringArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:BatchScoring", name, None, opts)
        cfg = model.batch_scoring
        definition = pulumi.Output.all(model_name=args.model_name, phi=args.phi_key.arn, data=args.data_bucket).apply(
            lambda v: scoring_definition(
                TransformSettings(
                    model=model.name,
                    model_name=v["model_name"],
                    phi_key_arn=v["phi"],
                    data_bucket=v["data"],
                    instance_type=cfg.instance_type,
                    instance_count=cfg.instances,
                )
            )
        )
        name_ = pipeline_name(platform.prefix, model.name)
        pipeline = aws.sagemaker.Pipeline(
            f"{model.name}-batch-scoring-pipeline",
            pipeline_name=name_,
            pipeline_display_name=name_,
            pipeline_description=f"Nightly Batch Transform of {model.name} over the day's extract",
            role_arn=args.role_arn,
            pipeline_definition=definition,
            tags=platform.tags(**{"clinops:model": model.name}),
            opts=platform.child(self),
        )
        role = aws.iam.Role(
            f"{model.name}-batch-scoring-scheduler-role",
            name=f"{name_}-scheduler",
            assume_role_policy=service_trust("scheduler.amazonaws.com", platform.account),
            permissions_boundary=args.boundary_arn,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.iam.RolePolicy(
            f"{model.name}-batch-scoring-scheduler-permissions",
            role=role.id,
            policy=policy_document(allow("StartBatchScoring", ["sagemaker:StartPipelineExecution"], pipeline.arn)),
            opts=platform.child(self),
        )
        aws.scheduler.Schedule(
            f"{model.name}-batch-scoring-schedule",
            name=name_,
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
                        {"name": "InputUri", "value": args.data_bucket.apply(lambda b: input_uri(b, model.name))}
                    ]
                },
            },
            opts=platform.child(self),
        )
        self.pipeline = pipeline
        self.register_outputs({"pipelineName": name_})
