"""The scheduled drift pipeline: sharded, isolated where it can be, KMS everywhere, valid for SageMaker."""

from __future__ import annotations

import json

import pytest

from pipelines.definitions.monitoring import DriftJobSettings, monitoring_definition
from pipelines.definitions.settings import DefinitionError
from tests.conftest import rendered

SETTINGS = DriftJobSettings(
    model="readmission-risk",
    role_arn="arn:aws:iam::333333333333:role/clinops-prod-sagemaker-execution",
    image_uri="111111111111.dkr.ecr.us-east-1.amazonaws.com/clinops-pipeline-steps:1.0.0",
    subnet_ids=("subnet-0a", "subnet-0b"),
    security_group_id="sg-0c",
    phi_key_arn="arn:aws:kms:us-east-1:333333333333:key/phi",
    artifacts_key_arn="arn:aws:kms:us-east-1:333333333333:key/artifacts",
    capture_bucket="capture",
    artifact_bucket="artifacts",
    data_bucket="data",
    instance_type="ml.m5.xlarge",
    instance_count=4,
)


def test_definition_shards_capture_and_keeps_security_settings() -> None:
    steps = {s["Name"]: s["Arguments"] for s in json.loads(monitoring_definition(SETTINGS))["Steps"]}
    shards, merge, quality = steps["DriftShards"], steps["DriftMerge"], steps["QualityBacktest"]
    assert quality["AppSpecification"]["ContainerEntrypoint"][:4] == [
        "python3",
        "-m",
        "pipelines.monitoring.quality.cli",
        "run",
    ]
    assert "--publish" in quality["AppSpecification"]["ContainerEntrypoint"]
    assert shards["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 4
    capture = next(i for i in shards["ProcessingInputs"] if i["InputName"] == "capture")
    assert capture["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    for job in (shards, merge, quality):
        assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == SETTINGS.phi_key_arn
        assert job["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-0a", "subnet-0b"]
        assert job["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
    assert shards["NetworkConfig"]["EnableNetworkIsolation"] is True  # only the merge publishes metrics
    # partial counts stay in the PHI bucket under the PHI key; reports go to the artifact bucket, whose policy
    # refuses any key but its own (the PHI key there failed every daily run)
    assert shards["ProcessingOutputConfig"]["KmsKeyId"] == SETTINGS.phi_key_arn
    for job in (merge, quality):
        (output,) = job["ProcessingOutputConfig"]["Outputs"]
        assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"][0].startswith(f"s3://{SETTINGS.artifact_bucket}/")
        assert job["ProcessingOutputConfig"]["KmsKeyId"] == SETTINGS.artifacts_key_arn


def test_invalid_job_is_refused_by_the_service_model() -> None:
    broken = DriftJobSettings(**{**SETTINGS.__dict__, "instance_type": "m5.xlarge"})
    with pytest.raises((DefinitionError, ValueError)):
        monitoring_definition(broken)


def test_each_pinned_model_gets_a_scheduled_drift_pipeline() -> None:
    states = [s["newState"] for s in rendered("prod")["steps"]]
    pipelines = [
        s
        for s in states
        if s["type"] == "aws:sagemaker/pipeline:Pipeline" and s["inputs"]["pipelineName"].endswith("-drift")
    ]  # beside it: batch scoring (infra.batch_scoring)
    schedules = [
        s for s in states if s["type"] == "aws:scheduler/schedule:Schedule" and s["inputs"]["name"].endswith("-drift")
    ]
    assert [p["inputs"]["pipelineName"] for p in pipelines] == ["clinops-prod-readmission-risk-drift"]
    assert schedules[0]["inputs"]["scheduleExpression"] == "cron(0 6 * * ? *)"
    assert schedules[0]["propertyDependencies"]["target"]
