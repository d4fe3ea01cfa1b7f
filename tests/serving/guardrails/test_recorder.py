"""The approval recorder: DescribeModelPackage / DescribePipelineExecution through Stubber (moto does not fill
LastModifiedBy), claims in moto SSM, alerts through moto SNS, entries in a real local evidence log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from serving.guardrails.events import APPROVAL_EVENT_PATTERN, approval_event_pattern, iso
from serving.guardrails.recorder import RecorderSettings, handle_package_event
from tests.serving.conftest import ACCOUNT, MODEL, REGION, STACK, T0, World, make_client, package

APPROVER = f"arn:aws:sts::{ACCOUNT}:assumed-role/clinical-governance/dr-okafor"
AUTHOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/data-science/lee"
PIPELINE_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/clinops-dev-sagemaker-execution/SageMaker-pipeline"
EXECUTION = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/clinops-{MODEL}-training/execution/abc123"
DECIDED = T0 + timedelta(hours=1)
RECORDER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/clinops-dev-approval-recorder"


def package_event(event_id: str, status: str, version: int = 5) -> dict[str, Any]:
    """The documented "SageMaker Model Package State Change" shape (no approver, no description in it)."""
    arn = package(version)
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": DECIDED.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": MODEL,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "CreationTime": T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
            "MetadataProperties": {"GeneratedBy": EXECUTION},
            "LastModifiedTime": DECIDED.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def context(arn: str, source_identity: str | None = None) -> dict[str, Any]:
    iam: dict[str, Any] = {"Arn": arn, "PrincipalId": "AROAEXAMPLE:session"}
    if source_identity:
        iam["SourceIdentity"] = source_identity
    return {"IamIdentity": iam}


def description(
    status: str,
    *,
    approver: dict[str, Any] | None,
    creator: dict[str, Any] | None = None,
    justification: str | None = "AUC 0.81 on the 2025 cohort; subgroup gap 0.03; reviewed model card",
    version: int = 5,
    decided: datetime = DECIDED,
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "ModelPackageName": MODEL,
        "ModelPackageGroupName": MODEL,
        "ModelPackageVersion": version,
        "ModelPackageArn": package(version),
        "CreationTime": T0,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": status,
        "CreatedBy": creator or context(PIPELINE_ROLE),
        "MetadataProperties": {"GeneratedBy": EXECUTION},
        "LastModifiedTime": decided,
    }
    if approver is not None:
        answer["LastModifiedBy"] = approver
    if justification is not None:
        answer["ApprovalDescription"] = justification
    return answer


class Registry:
    """The registry's read side, as Stubber answers it (requests validated against the service model)."""

    def __init__(self, client: Any) -> None:
        self.client, self.stubber = client, Stubber(client)
        self.stubber.activate()

    def package(
        self, answer: dict[str, Any], *, starter: dict[str, Any] | None = None, reads_execution: bool = True
    ) -> None:
        arn = answer["ModelPackageArn"]
        self.stubber.add_response("describe_model_package", answer, {"ModelPackageName": arn})
        if reads_execution:
            self.stubber.add_response(
                "describe_pipeline_execution",
                {"PipelineExecutionArn": EXECUTION, "CreatedBy": starter or context(AUTHOR, "lee@hospital.example")},
                {"PipelineExecutionArn": EXECUTION},
            )


@pytest.fixture
def registry(world: World, pool: dict[str, Any]) -> Iterator[Registry]:
    pool.setdefault("sagemaker-registry", make_client("sagemaker"))
    reg = Registry(pool["sagemaker-registry"])
    yield reg
    reg.stubber.deactivate()


def record(world: World, registry: Registry, event: dict[str, Any]) -> Any:
    settings = RecorderSettings(stack=STACK, topic_arn=world.topic_arn, actor=RECORDER_ROLE)
    return handle_package_event(event, registry.client, world.ssm, world.sns, world.evidence, world.clock, settings)


def test_an_approval_is_recorded_with_approver_justification_version_and_time(world: World, registry: Registry) -> None:
    registry.package(description("Approved", approver=context(APPROVER, "dr-okafor@hospital.example")))
    result = record(world, registry, package_event("ev-1", "Approved"))

    assert result.outcome == "recorded"
    [entry] = world.entries("approval")
    assert (entry.actor, entry.package_arn, entry.model, entry.model_version) == (APPROVER, package(5), MODEL, "5")
    assert entry.reason == "AUC 0.81 on the 2025 cohort; subgroup gap 0.03; reviewed model card"
    assert entry.details["status"] == "Approved"
    assert entry.details["approver_role"] == f"{ACCOUNT}:role/clinical-governance"
    assert entry.details["approver"]["source_identity"] == "dr-okafor@hospital.example"
    assert entry.details["decided_at"] == "2026-03-01T03:00:00.000Z"
    assert entry.details["registered_at"] == iso(T0)  # the scorecard's cycle time starts here
    assert entry.details["authors"] == {"creator": PIPELINE_ROLE, "pipeline-starter": AUTHOR}
    assert entry.details["recorded_by"] == RECORDER_ROLE
    assert world.alerts() == []
    registry.stubber.assert_no_pending_responses()


def test_a_rejection_is_recorded_too(world: World, registry: Registry) -> None:
    registry.package(description("Rejected", approver=context(APPROVER), justification="calibration drifts in ICU"))
    assert record(world, registry, package_event("ev-2", "Rejected")).outcome == "recorded"
    [entry] = world.entries("approval")
    assert entry.details["status"] == "Rejected" and entry.reason == "calibration drifts in ICU"


def test_pending_manual_approval_is_ignored_without_reading_anything(world: World, registry: Registry) -> None:
    result = record(world, registry, package_event("ev-3", "PendingManualApproval"))
    assert result.outcome == "ignored" and "not a decision" in result.reason
    assert world.entries("approval") == []  # and no Stubber response was consumed: none was queued


def test_the_same_decision_delivered_twice_is_recorded_once(world: World, registry: Registry) -> None:
    # SageMaker may send several events (different ids) for one change: the decision, not the id, is the key.
    for _ in range(2):
        registry.package(description("Approved", approver=context(APPROVER)))
    first = record(world, registry, package_event("ev-1", "Approved"))
    second = record(world, registry, package_event("ev-1-again", "Approved"))
    assert (first.outcome, second.outcome) == ("recorded", "duplicate")
    assert len(world.entries("approval")) == 1


@pytest.mark.parametrize(
    ("approver", "creator", "breach"),
    [
        (context(PIPELINE_ROLE), None, "(package creator)"),  # automation self-approval
        (context(f"arn:aws:sts::{ACCOUNT}:assumed-role/data-science/lee-2"), context(AUTHOR), "both acted as"),
        (context(APPROVER, "lee@hospital.example"), None, "(package pipeline-starter)"),  # one person, two roles
    ],
    ids=["automation", "author-role", "same-person"],
)
def test_self_approval_is_refused_and_alerted(
    world: World, registry: Registry, approver: dict[str, Any], creator: dict[str, Any] | None, breach: str
) -> None:
    registry.package(description("Approved", approver=approver, creator=creator))
    result = record(world, registry, package_event("ev-1", "Approved"))
    assert result.outcome == "refused-segregation" and breach in result.reason
    assert "approved by its own author" in result.reason or "both acted as" in result.reason
    assert world.entries("approval") == []
    [alert] = world.alerts()
    assert alert["outcome"] == "refused-segregation" and alert["package_arn"] == package(5)


def test_an_unattributed_decision_is_refused(world: World, registry: Registry) -> None:
    registry.package(description("Approved", approver=None), reads_execution=False)
    result = record(world, registry, package_event("ev-1", "Approved"))
    assert result.outcome == "refused-unattributed" and world.entries("approval") == []
    assert world.alerts()[0]["outcome"] == "refused-unattributed"


def test_a_decision_superseded_before_it_was_read_is_alerted_not_misattributed(
    world: World, registry: Registry
) -> None:
    registry.package(description("Rejected", approver=context(APPROVER)), reads_execution=False)
    result = record(world, registry, package_event("ev-1", "Approved"))
    assert result.outcome == "superseded" and world.entries("approval") == []
    assert world.alerts()[0]["outcome"] == "superseded"


def test_an_approval_without_justification_is_recorded_and_flagged(world: World, registry: Registry) -> None:
    registry.package(description("Approved", approver=context(APPROVER), justification=None))
    result = record(world, registry, package_event("ev-1", "Approved"))
    assert result.outcome == "recorded" and "without a justification" in result.reason
    assert world.entries("approval")[0].details["justification"] is None
    assert world.alerts()[0]["outcome"] == "recorded"


def test_the_approval_pattern_passes_only_decisions(world: World, pool: dict[str, Any]) -> None:
    """EventBridge (moto) filters with the exported pattern: Approved and Rejected reach the target."""
    events, sqs = pool["events"], pool["sqs"]
    queue = sqs.create_queue(QueueName="decisions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="approvals", EventPattern=json.dumps(approval_event_pattern([MODEL])))
    events.put_targets(Rule="approvals", Targets=[{"Id": "recorder", "Arn": arn}])
    for status in ("PendingManualApproval", "Approved", "Rejected"):
        detail = package_event("x", status)["detail"]
        events.put_events(
            Entries=[
                {
                    "Source": "aws.sagemaker",
                    "DetailType": "SageMaker Model Package State Change",
                    "Detail": json.dumps(detail),
                }
            ]
        )
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(json.loads(m["Body"])["detail"]["ModelApprovalStatus"] for m in received) == ["Approved", "Rejected"]
    assert APPROVAL_EVENT_PATTERN["detail"] == {"ModelApprovalStatus": ["Approved", "Rejected"]}
