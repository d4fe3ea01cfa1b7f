"""Nightly batch scoring: per model, the definition of a SageMaker pipeline with one Batch Transform step
(`infra.batch_scoring` declares it and its EventBridge schedule), and its on-demand start (`start_batch_scoring`,
or StartPipelineExecution with another `InputUri`).

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

from pipelines.definitions.checks import validate_against_service_model

STEP = "BatchScore"
INVOCATION_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class TransformSettings:
    model: str
    model_name: str  # the endpoint's SageMaker Model (image, package, VPC, network isolation)
    phi_key_arn: str
    data_bucket: str  # the PHI bucket: input extracts and scored output
    instance_type: str
    instance_count: int
    max_payload_mb: int  # mini-batches within the container's body limit (`infra.batch_scoring` derives it)


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
        "MaxPayloadInMB": s.max_payload_mb,
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


def start_batch_scoring(client: Any, name: str, input_s3_uri: str | None = None) -> str:
    """On-demand run (a re-score, a backfill): the scheduled pipeline, optionally on another input prefix."""
    parameters = [{"Name": "InputUri", "Value": input_s3_uri}] if input_s3_uri else []
    response = client.start_pipeline_execution(
        PipelineName=name, PipelineParameters=parameters, PipelineExecutionDescription="on-demand batch scoring"
    )
    return str(response["PipelineExecutionArn"])
