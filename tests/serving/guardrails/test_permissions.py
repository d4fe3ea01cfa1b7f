"""Every AWS call the functions make is covered by the IAM grants exported for the wiring (and no more is asked
than they use: each declared SageMaker/SSM/SNS action is exercised by some path here)."""

from __future__ import annotations

from typing import Any

from serving.guardrails.breaker import handle_alarm_event, rollback_request
from serving.guardrails.permissions import BREAKER, RECORDER, RETRAINING, actions
from serving.guardrails.recorder import RecorderSettings, handle_package_event
from serving.guardrails.retrain import handle_retraining_alarm
from serving.guardrails.state import SsmStateStore
from tests.serving.conftest import ENDPOINT, STACK, CallLog, World, alarm_event, config, make_client
from tests.serving.guardrails.test_recorder import APPROVER, Registry, context, description, package_event
from tests.serving.guardrails.test_retrain import PIPELINE, ROLE, SETTINGS

PREFIX = {"sagemaker": "sagemaker", "ssm": "ssm", "sns": "sns", "cloudwatch": "cloudwatch"}


def _iam_prefix(client: Any) -> str:
    signing = client.meta.service_model.signing_name
    return {"monitoring": "cloudwatch"}.get(signing, signing)  # CloudWatch signs as `monitoring`


def used(*clients: Any) -> tuple[list[CallLog], Any]:
    logs = [CallLog(c) for c in clients]

    def names() -> set[str]:
        return {f"{_iam_prefix(log.client)}:{name}" for log in logs for name in log.names}

    return logs, names


def close(logs: list[CallLog]) -> None:
    for log in logs:
        log.close()


def test_the_breaker_uses_only_its_grants(world: World) -> None:
    logs, names = used(
        world.moto_sagemaker,
        world.sagemaker.update_client,
        world.sagemaker.describe_client,
        world.ssm,
        world.sns,
        world.cloudwatch,
    )
    try:
        world.sagemaker.expect_update(rollback_request(ENDPOINT, config(3), 1800))
        handle_alarm_event(alarm_event("e-1"), world.clients(), SsmStateStore(world.ssm), world.clock, world.settings)
        calls = names()
    finally:
        close(logs)
    assert calls <= actions(BREAKER), calls - actions(BREAKER)
    assert {a for a in actions(BREAKER) if a.split(":")[0] in PREFIX} <= calls


def test_the_recorder_and_retraining_use_only_their_grants(world: World, pool: dict[str, Any]) -> None:
    pool.setdefault("sagemaker-registry", make_client("sagemaker"))
    registry = Registry(pool["sagemaker-registry"])
    registry.package(description("Approved", approver=context(APPROVER)))
    logs, names = used(registry.client, world.ssm, world.sns)
    try:
        settings = RecorderSettings(STACK, world.topic_arn, "arn:aws:iam::111111111111:role/recorder")
        handle_package_event(
            package_event("ev-1", "Approved"),
            registry.client,
            world.ssm,
            world.sns,
            world.evidence,
            world.clock,
            settings,
        )
        recorder_calls = names()
    finally:
        close(logs)
        registry.stubber.deactivate()
    assert recorder_calls == {
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribePipelineExecution",
        "ssm:PutParameter",
    }
    assert recorder_calls <= actions(RECORDER)  # DeleteParameter and Publish: failure and alert paths

    world.moto_sagemaker.create_pipeline(PipelineName=PIPELINE, PipelineDefinition="{}", RoleArn=ROLE)
    logs, names = used(world.moto_sagemaker)
    try:
        handle_retraining_alarm(
            alarm_event("d-1", f"{ENDPOINT}-drift"), world.moto_sagemaker, world.evidence, world.clock, SETTINGS
        )
        retraining_calls = names()
    finally:
        close(logs)
    assert retraining_calls == {"sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"}
    assert retraining_calls == {a for a in actions(RETRAINING) if a.startswith("sagemaker:")}
