"""Pipeline runs reach the stack's SageMaker-managed MLflow server: the rendered plan hands the server's ARN to
the training pipelines' TrackRun step (and nowhere else), and the VPC has the MLflow endpoint whose policy admits
only that server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clinops.config import MLFLOW_ENDPOINT_SERVICE
from tests.conftest import rendered

REGION = "us-east-1"
SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"


def _states(plan: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [s["newState"] for s in plan["steps"] if s["newState"]["type"] == type_]


def _server(plan: dict[str, Any]) -> tuple[str, str]:
    (server,) = _states(plan, SERVER)
    arn = f"arn:aws:sagemaker:{REGION}:{plan['config']['clinops:accountId']}:mlflow-tracking-server/"
    return server["urn"], arn + server["inputs"]["trackingServerName"]


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found, pending = {}, list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        found[step["Name"]] = step
        pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


def test_training_pipelines_log_to_the_stacks_server_from_one_step() -> None:
    plan = rendered("dev")  # the build account: the pipelines live there
    server_urn, server_arn = _server(plan)
    training = [p for p in _states(plan, PIPELINE) if p["inputs"]["pipelineName"].endswith("-training")]
    assert len(training) == 2
    for pipeline in training:
        assert server_urn in pipeline["dependencies"]  # created after the server its runs log to
        steps = _steps(json.loads(pipeline["inputs"]["pipelineDefinition"]))
        track = steps["TrackRun"]["Arguments"]
        assert track["Environment"] == {"MLFLOW_TRACKING_URI": server_arn}
        assert track["NetworkConfig"]["EnableNetworkIsolation"] is False
        assert (
            track["NetworkConfig"]["VpcConfig"]["Subnets"] and track["NetworkConfig"]["VpcConfig"]["SecurityGroupIds"]
        )
        lifted = {
            name
            for name, step in steps.items()
            if step["Type"] == "Processing" and not step["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"]
        }
        assert lifted == {"DecideRelease", "TrackRun"}
        assert steps["TrainModel"]["Arguments"]["EnableNetworkIsolation"] is True
        assert [n for n, s in steps.items() if "Environment" in s["Arguments"]] == ["TrackRun"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_mlflow_endpoint_admits_only_the_stacks_server(stack: str) -> None:
    plan = rendered(stack)
    _, server_arn = _server(plan)
    service = MLFLOW_ENDPOINT_SERVICE.format(region=REGION)
    (endpoint,) = [e for e in _states(plan, "aws:ec2/vpcEndpoint:VpcEndpoint") if e["inputs"]["serviceName"] == service]
    inputs = endpoint["inputs"]
    assert inputs["vpcEndpointType"] == "Interface" and inputs["privateDnsEnabled"] is True
    assert inputs["subnetIds"] and endpoint["propertyDependencies"]["subnetIds"]  # the private subnets
    assert json.loads(inputs["policy"])["Statement"] == [
        {
            "Sid": "ThisStacksTrackingServerOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "sagemaker-mlflow:*",
            "Resource": server_arn,
            "Condition": {"StringEquals": {"aws:PrincipalAccount": [plan["config"]["clinops:accountId"]]}},
        }
    ]
