"""Retraining requests: the pipeline starts on fresh data (moto), evidence is written, and the exact set of AWS
calls shows nothing was approved or deployed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from clinops.cli import rollback as cli
from clinops.evidence import EvidenceLog
from clinops.names import training_pipeline_name
from serving.guardrails.events import retraining_event_pattern
from serving.guardrails.retrain import (
    DATA_PARAMETER,
    RetrainingRequest,
    RetrainSettings,
    handle_retraining_alarm,
    open_retraining_request,
    sustained_drift,
    verdicts_from_results,
)
from tests.conftest import REPO
from tests.serving.conftest import (
    ACCOUNT,
    ENDPOINT,
    MODEL,
    STACK,
    CallLog,
    World,
    alarm_event,
    make_client,
    stack_root,
)
from tests.serving.guardrails.shapes import violations

PIPELINE = training_pipeline_name(MODEL)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/clinops-dev-retraining"
SETTINGS = RetrainSettings(STACK, (MODEL,), "s3://clinops-dev-111111111111-phi/{model}/fresh/", ROLE)


@pytest.fixture
def calls(world: World) -> Any:
    world.moto_sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/clinops-dev-sagemaker-execution",
    )
    log = CallLog(world.moto_sagemaker)
    yield log
    log.close()


@pytest.mark.parametrize(
    ("verdicts", "sustained"),
    [
        (["drift", "drift", "drift"], True),
        (["no-drift", "drift", "insufficient-data", "drift", "drift"], True),
        (["drift", "drift", "no-drift", "drift", "drift"], False),
        (["drift", "drift"], False),
        ([], False),
    ],
)
def test_sustained_drift_needs_consecutive_verdicts(verdicts: list[str], sustained: bool) -> None:
    assert sustained_drift(verdicts, 3) is sustained


def test_drift_results_are_ordered_by_their_window() -> None:
    results = [
        {"model": MODEL, "verdict": "no-drift", "window": {"last": "2026-03-03T00:00:00Z"}},
        {"model": MODEL, "verdict": "drift", "window": {"last": "2026-03-01T00:00:00Z"}},
        {"model": "sepsis-warning", "verdict": "drift", "window": {"last": "2026-03-04T00:00:00Z"}},
    ]
    assert verdicts_from_results(results, MODEL) == ["drift", "no-drift"]


def test_a_retraining_request_starts_the_pipeline_and_never_approves_or_deploys(world: World, calls: CallLog) -> None:
    request = RetrainingRequest(
        STACK, MODEL, "sustained-drift", "3 daily drift verdicts", "s3://fresh/readmission/", ROLE, "req-1"
    )
    result = open_retraining_request(world.moto_sagemaker, world.evidence, request, clock=world.clock)

    assert result.outcome == "started" and result.execution_arn
    assert calls.names == ["ListPipelineExecutions", "StartPipelineExecution"]  # the whole set: no approval, no deploy
    start = calls.params["StartPipelineExecution"]
    assert start["PipelineParameters"] == [{"Name": DATA_PARAMETER, "Value": "s3://fresh/readmission/"}]
    assert violations("sagemaker", "StartPipelineExecution", start) == []
    [entry] = world.entries("retraining")
    assert entry.actor == ROLE and entry.details["execution_arn"] == result.execution_arn
    assert entry.details["outcome"] == "started" and "PendingManualApproval" in entry.details["human_gate"]
    packages = world.moto_sagemaker.list_model_packages(ModelPackageGroupName=MODEL)["ModelPackageSummaryList"]
    assert packages == []  # nothing registered, let alone approved, by the request itself


def test_the_drift_alarm_path_derives_the_request_and_is_idempotent_per_event(world: World, calls: CallLog) -> None:
    event = alarm_event("drift-1", f"{ENDPOINT}-drift")
    result = handle_retraining_alarm(event, world.moto_sagemaker, world.evidence, world.clock, SETTINGS)
    assert result is not None and result.outcome == "started"
    start = calls.params["StartPipelineExecution"]
    assert start["PipelineParameters"][0]["Value"] == f"s3://clinops-dev-111111111111-phi/{MODEL}/fresh/"
    token = start["ClientRequestToken"]
    handle_retraining_alarm(event, world.moto_sagemaker, world.evidence, world.clock, SETTINGS)
    assert calls.params["StartPipelineExecution"]["ClientRequestToken"] == token  # SageMaker dedupes the retry
    assert world.entries("retraining")[0].details["trigger"] == "sustained-drift"
    assert (
        handle_retraining_alarm(
            alarm_event("x", f"{ENDPOINT}-5xx-rate"), world.moto_sagemaker, world.evidence, world.clock, SETTINGS
        )
        is None
    )


def test_a_running_execution_serves_the_request(world: World) -> None:
    client = make_client("sagemaker")
    stubber = Stubber(client)
    stubber.add_response(
        "list_pipeline_executions",
        {
            "PipelineExecutionSummaries": [
                {
                    "PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/"
                    f"{PIPELINE}/execution/run1",
                    "PipelineExecutionStatus": "Executing",
                }
            ]
        },
        {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 20},
    )
    with stubber:
        request = RetrainingRequest(STACK, MODEL, "quality-drop", "AUC fell to 0.64", "s3://fresh/x/", ROLE, "r")
        result = open_retraining_request(client, world.evidence, request, clock=world.clock)
    stubber.assert_no_pending_responses()  # and no StartPipelineExecution was sent: none was stubbed
    assert result.outcome == "already-running" and result.execution_arn.endswith("/run1")


def test_a_non_s3_data_location_is_refused_before_any_call(world: World, calls: CallLog) -> None:
    request = RetrainingRequest(STACK, MODEL, "quality-drop", "why not", "/tmp/data", ROLE, "r")
    with pytest.raises(ValueError, match="not an S3 URI"):
        open_retraining_request(world.moto_sagemaker, world.evidence, request, clock=world.clock)
    assert calls.names == [] and world.entries("retraining") == []


def test_the_retraining_pattern_names_only_drift_and_quality_alarms() -> None:
    pattern = retraining_event_pattern(STACK, [MODEL])
    assert pattern["detail"]["alarmName"] == [f"{ENDPOINT}-drift", f"{ENDPOINT}-quality"]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}


def test_the_cli_starts_retraining_only_on_sustained_drift(
    world: World, calls: CallLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = stack_root(tmp_path)
    shutil.copy(REPO / "Pulumi.dev.yaml", root / "Pulumi.dev.yaml")
    opened: list[str] = []

    def open_clients(config: Any) -> cli.StackClients:
        opened.append(config.stack)
        return cli.StackClients(world.moto_sagemaker, world.ssm, world.cloudwatch, ROLE)

    monkeypatch.setattr(cli, "open_clients", open_clients)
    monkeypatch.setattr(cli, "clock", world.clock)
    results = []
    for day, verdict in enumerate(["drift", "no-drift", "drift", "drift"]):
        path = tmp_path / f"drift-{day}.json"
        path.write_text(json.dumps({"model": MODEL, "verdict": verdict, "window": {"last": f"2026-03-0{day + 1}"}}))
        results += ["--drift-result", str(path)]
    args = [
        "request",
        "--stack",
        STACK,
        "--model",
        MODEL,
        "--data-uri",
        "s3://fresh/readmission/",
        "--trigger",
        "drift",
        "--reason",
        "input drift on three daily windows",
        "--evidence",
        str(tmp_path / "ev"),
        "--root",
        str(root),
    ]

    not_yet = CliRunner().invoke(cli.retrain_app, [*args, *results])
    assert not_yet.exit_code == 1 and "not sustained" in not_yet.output
    assert "StartPipelineExecution" not in calls.names and opened == []

    extra = tmp_path / "drift-9.json"
    extra.write_text(json.dumps({"model": MODEL, "verdict": "drift", "window": {"last": "2026-03-09"}}))
    started = CliRunner().invoke(cli.retrain_app, [*args, *results, "--drift-result", str(extra)])
    assert started.exit_code == 0, started.output
    assert "started" in started.output and "PendingManualApproval" in started.output
    assert opened == ["dev"]  # the pipeline lives in the registry account's stack
    [entry] = EvidenceLog.local(tmp_path / "ev" / STACK, STACK).entries()
    assert entry.details["verdicts"][-3:] == ["drift", "drift", "drift"]
