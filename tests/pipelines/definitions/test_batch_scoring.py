"""The nightly batch-scoring definition: a Batch Transform valid for SageMaker (botocore's CreateTransformJob
shape), KMS on volume and output, input from the PHI bucket, startable on demand on another extract."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.definitions.batch_scoring import TransformSettings, scoring_definition, start_batch_scoring
from pipelines.definitions.settings import DefinitionError

SETTINGS = TransformSettings(
    model="readmission-risk",
    model_name="clinops-prod-readmission-risk-v2",
    phi_key_arn="arn:aws:kms:us-east-1:333333333333:key/phi",
    data_bucket="clinops-prod-phi-data",
    instance_type="ml.m5.xlarge",
    instance_count=2,
    max_payload_mb=6,
)


def test_definition_is_a_valid_encrypted_transform_of_phi_data() -> None:
    doc = json.loads(scoring_definition(SETTINGS))
    [step] = doc["Steps"]
    job = step["Arguments"]
    assert step["Type"] == "Transform" and job["ModelName"] == SETTINGS.model_name
    assert job["TransformResources"]["VolumeKmsKeyId"] == SETTINGS.phi_key_arn
    assert job["TransformOutput"]["KmsKeyId"] == SETTINGS.phi_key_arn
    assert job["TransformOutput"]["S3OutputPath"]["Std:Join"]["Values"][0].startswith("s3://clinops-prod-phi-data/")
    [parameter] = doc["Parameters"]
    assert parameter["DefaultValue"] == "s3://clinops-prod-phi-data/readmission-risk/batch/input/"
    assert job["TransformInput"]["ContentType"] == "text/csv" and job["TransformInput"]["SplitType"] == "Line"
    assert job["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    assert job["MaxPayloadInMB"] == 6


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"instance_type": "ml.m5.huge"}, "is not one of"),
        ({"instance_count": 0}, "minimum"),
        ({"phi_key_arn": "k" * 3000}, "maximum"),
    ],
)
def test_botocore_refuses_what_sagemaker_would(change: dict[str, object], problem: str) -> None:
    with pytest.raises(DefinitionError, match=problem):
        scoring_definition(TransformSettings(**{**SETTINGS.__dict__, **change}))


def test_on_demand_start_can_point_at_another_extract() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:333333333333:pipeline/p/execution/e1"
    with Stubber(client) as stub:
        expected = {
            "PipelineName": "clinops-prod-readmission-risk-batch-scoring",
            "PipelineExecutionDescription": "on-demand batch scoring",
            "PipelineParameters": [{"Name": "InputUri", "Value": "s3://b/rescore/"}],
        }
        stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, expected)
        assert start_batch_scoring(client, "clinops-prod-readmission-risk-batch-scoring", "s3://b/rescore/") == arn
