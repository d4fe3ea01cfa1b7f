"""Nightly batch scoring in the rendered plan: per served model, a scheduled Batch Transform of the endpoint's own
Model (same image, package, VPC and network isolation), its schedule encrypted with a key of the stack."""

from __future__ import annotations

import json

from clinops.names import batch_scoring_pipeline_name
from infra.batch_scoring import MAX_PAYLOAD_MB
from serving.container.settings import DEFAULT_MAX_BODY_BYTES
from tests.conftest import rendered


def test_each_served_model_gets_a_scheduled_transform_of_its_endpoint_model() -> None:
    states = [s["newState"] for s in rendered("prod")["steps"]]
    pipelines = {s["inputs"]["pipelineName"]: s for s in states if s["type"] == "aws:sagemaker/pipeline:Pipeline"}
    scoring = pipelines[batch_scoring_pipeline_name("prod", "readmission-risk")]
    definition = json.loads(scoring["inputs"]["pipelineDefinition"])
    job = definition["Steps"][0]["Arguments"]
    models = {s["inputs"]["name"]: s for s in states if s["type"] == "aws:sagemaker/model:Model"}
    served = models[job["ModelName"]]  # the endpoint's own Model: same image, package, VPC and isolation
    assert served["inputs"]["enableNetworkIsolation"] is True and served["inputs"]["vpcConfig"]["subnets"]
    configs = [s for s in states if s["type"] == "aws:sagemaker/endpointConfiguration:EndpointConfiguration"]
    pinned = [c for c in configs if c["inputs"]["tags"].get("clinops:config-role") == "pinned"]
    assert pinned and pinned[0]["inputs"]["productionVariants"][0]["modelName"] == job["ModelName"]
    schedules = {s["inputs"]["name"]: s for s in states if s["type"] == "aws:scheduler/schedule:Schedule"}
    schedule = schedules[batch_scoring_pipeline_name("prod", "readmission-risk")]
    assert schedule["inputs"]["scheduleExpression"] == "cron(0 2 * * ? *)" and schedule["inputs"]["kmsKeyArn"]
    assert job["MaxPayloadInMB"] == MAX_PAYLOAD_MB and MAX_PAYLOAD_MB * 1024 * 1024 <= DEFAULT_MAX_BODY_BYTES
