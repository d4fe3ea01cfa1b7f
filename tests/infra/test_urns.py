"""Moving code must not move resources: a changed URN makes `pulumi up` delete and recreate the resource.

`urns-before-layout.json` was rendered from all three stacks before the code moved into its current homes (issue
10). Every stateful resource in it (data, keys, logs, the trail, the Studio domain, the registry, endpoints, the
MLflow server, repositories, the network, parameters, queues and topics) must still render with the same URN;
new resources may appear beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import rendered

SNAPSHOT = json.loads((Path(__file__).parent / "urns-before-layout.json").read_text())
STATEFUL = {
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudtrail/trail:Trail",
    "aws:sagemaker/domain:Domain",
    "aws:sagemaker/userProfile:UserProfile",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
    "aws:sagemaker/endpoint:Endpoint",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
    "aws:sagemaker/pipeline:Pipeline",
    "aws:ecr/repository:Repository",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ssm/parameter:Parameter",
    "aws:sqs/queue:Queue",
    "aws:sns/topic:Topic",
    "aws:iam/role:Role",
}


def resource_type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


@pytest.mark.parametrize("stack", sorted(SNAPSHOT))
def test_every_stateful_urn_survives_the_move(stack: str) -> None:
    current = {step["urn"] for step in rendered(stack)["steps"]}
    stateful = [urn for urn in SNAPSHOT[stack] if resource_type(urn) in STATEFUL]
    assert len(stateful) > 40  # the snapshot really holds the platform
    assert [urn for urn in stateful if urn not in current] == []


def test_the_check_notices_a_renamed_component_type() -> None:
    """What a move without kept type tokens (or aliases) would do: every child's URN changes."""
    plan = rendered("prod")
    moved = {
        step["urn"].replace("clinops:serving:ModelEndpoint", "clinops:infra:ModelEndpoint") for step in plan["steps"]
    }
    endpoints = [u for u in SNAPSHOT["prod"] if resource_type(u) == "aws:sagemaker/endpoint:Endpoint"]
    assert endpoints and not any(u in moved for u in endpoints)
