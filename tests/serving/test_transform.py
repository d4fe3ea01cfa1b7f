"""Nightly batch scoring in the cloud plan: a Batch Transform of the endpoint's own Model, valid for SageMaker
(botocore's CreateTransformJob shape), KMS on volume and output, input from the PHI bucket, scheduled and
startable on demand - and what SageMaker would do with the rows (filter, score, join) matches local scoring."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.definition import DefinitionError
from serving.container.batch import score_file
from serving.transform import TransformSettings, pipeline_name, scoring_definition, start_batch_scoring
from tests.conftest import rendered
from tests.serving.conftest import Running

SETTINGS = TransformSettings(
    model="readmission-risk",
    model_name="clinops-prod-readmission-risk-v2",
    phi_key_arn="arn:aws:kms:us-east-1:333333333333:key/phi",
    data_bucket="clinops-prod-phi-data",
    instance_type="ml.m5.xlarge",
    instance_count=2,
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


def test_each_served_model_gets_a_scheduled_transform_of_its_endpoint_model() -> None:
    states = [s["newState"] for s in rendered("prod")["steps"]]
    pipelines = {s["inputs"]["pipelineName"]: s for s in states if s["type"] == "aws:sagemaker/pipeline:Pipeline"}
    scoring = pipelines[pipeline_name("clinops-prod", "readmission-risk")]
    definition = json.loads(scoring["inputs"]["pipelineDefinition"])
    job = definition["Steps"][0]["Arguments"]
    models = {s["inputs"]["name"]: s for s in states if s["type"] == "aws:sagemaker/model:Model"}
    served = models[job["ModelName"]]  # the endpoint's own Model: same image, package, VPC and isolation
    assert served["inputs"]["enableNetworkIsolation"] is True and served["inputs"]["vpcConfig"]["subnets"]
    configs = [s for s in states if s["type"] == "aws:sagemaker/endpointConfiguration:EndpointConfiguration"]
    pinned = [c for c in configs if c["inputs"]["tags"].get("clinops:config-role") == "pinned"]
    assert pinned and pinned[0]["inputs"]["productionVariants"][0]["modelName"] == job["ModelName"]
    schedules = {s["inputs"]["name"]: s for s in states if s["type"] == "aws:scheduler/schedule:Schedule"}
    schedule = schedules[pipeline_name("clinops-prod", "readmission-risk")]
    assert schedule["inputs"]["scheduleExpression"] == "cron(0 2 * * ? *)" and schedule["inputs"]["kmsKeyArn"]


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


def test_what_batch_transform_does_to_the_rows_matches_local_scoring(
    bundle_dir: Path, running: Running, tmp_path: Path
) -> None:
    """SageMaker's part, done by hand: InputFilter $[1:] drops the id, the container scores headerless CSV
    (Accept text/csv), JoinSource=Input appends the score to the input line, OutputFilter $[0,-1] keeps id,score."""
    from tests.serving.test_batch import extract

    frame = extract(200)
    features = json.loads((bundle_dir / "metadata.json").read_text())["feature_columns"]
    lines = frame[["admission_id", *features]].to_csv(index=False, header=False, lineterminator="\n").splitlines()
    cells = [next(csv.reader([line])) for line in lines]
    body = "\n".join(",".join(c[1:]) for c in cells) + "\n"  # $[1:]
    reply = running.client.post(body, "text/csv", Accept="text/csv")
    assert reply.status == 200, reply.raw
    scores = reply.raw.decode().splitlines()
    joined = [[*c, s] for c, s in zip(cells, scores, strict=True)]  # JoinSource=Input
    cloud = [(row[0], float(row[-1])) for row in joined]  # $[0,-1]
    frame.to_csv(tmp_path / "extract.csv", index=False)
    score_file(bundle_dir, tmp_path / "extract.csv", tmp_path / "local.csv", id_columns=["admission_id"])
    local = [
        (r["admission_id"], float(r["score"]))
        for r in csv.DictReader(io.StringIO((tmp_path / "local.csv").read_text()))
    ]
    assert cloud == local
