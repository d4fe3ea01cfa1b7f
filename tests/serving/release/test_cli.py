"""The commands as a CI job runs them: exit codes, messages, evidence (moto behind the real CLI code)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import typer
from botocore.stub import ANY
from typer.testing import CliRunner

import clinops.cli.release
import serving.release.aws
from clinops import names
from clinops.cli.release import release_app, shadow_app, verify_app
from serving.release.evidence import EvidenceLocation, trusted_history
from tests.serving.release.helpers import (
    ACTOR,
    MODEL,
    NOW,
    deploy_alarms_and_pins,
    endpoint_description,
    package_arn,
    stubbed,
)
from tests.serving.release.test_shadow import write_capture

HISTORY = {
    "HistoryItemType": "StateUpdate",
    "StartDate": ANY,
    "EndDate": ANY,
    "ScanBy": "TimestampDescending",
    "MaxRecords": ANY,
}
app = typer.Typer()
app.add_typer(release_app)
app.add_typer(verify_app)
app.add_typer(shadow_app, name="shadow")


@pytest.fixture
def run(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session):
    monkeypatch.setenv("COLUMNS", "240")  # keep rich from wrapping ARNs
    monkeypatch.setattr(clinops.cli.release, "base_session", lambda: session)  # moto's, with models loaded
    common = ["--root", str(project), "--evidence", str(tmp_path / "evidence")]

    def invoke(*args: str):
        return CliRunner().invoke(app, [*args, *common])

    return invoke


def _entries(tmp_path: Path, stack: str) -> list:
    return trusted_history(EvidenceLocation(str(tmp_path / "evidence")).log(stack), MODEL)


def test_release_refuses_an_unapproved_package(run, registry, tmp_path) -> None:
    arn = registry.register()
    result = run("release", "--stack", "dev", "--model", MODEL, "--package", arn, "--reason", "CHG-1")
    assert result.exit_code == 3, result.output
    assert "PendingManualApproval, not Approved" in result.output
    [entry] = _entries(tmp_path, "dev")
    assert entry.actor == "arn:aws:sts::123456789012:user/moto"  # default actor: the STS caller identity


def test_release_refuses_a_self_approved_package(run, registry) -> None:
    [arn] = registry.approved()  # moto records the same Studio profile as author and approver
    result = run("release", "--stack", "dev", "--model", MODEL, "--package", arn, "--reason", "CHG-1", "--actor", ACTOR)
    assert result.exit_code == 4, result.output
    assert "approved by its own author" in result.output


def test_release_of_an_unknown_stack_or_bad_actor_is_unusable(run, registry) -> None:
    result = run("release", "--stack", "qa", "--model", MODEL, "--package", package_arn(1), "--reason", "x")
    assert result.exit_code == 2 and "no stack file Pulumi.qa.yaml" in result.output
    result = run(
        "release", "--stack", "dev", "--model", MODEL, "--package", package_arn(1), "--reason", "x", "--actor", "alice"
    )
    assert result.exit_code == 2 and "not an IAM/STS ARN" in result.output


def test_verify_flags_a_rolled_back_endpoint(run, session, monkeypatch, tmp_path) -> None:
    pinned, previous = (names.config_name("dev", MODEL, package_arn(v)) for v in (3, 2))
    deploy_alarms_and_pins(session, "dev", pinned, previous)  # SSM pins from moto
    sagemaker, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", endpoint_description("dev", previous))
    five_xx, latency, alarm = names.alarm_names("dev", MODEL)
    states = {
        "MetricAlarms": [
            {"AlarmName": five_xx, "StateValue": "OK"},
            {"AlarmName": latency, "StateValue": "OK"},
            {"AlarmName": alarm, "StateValue": "ALARM", "StateReason": "12% invalid"},
        ]
    }
    cloudwatch, cw_stub = stubbed("cloudwatch")
    cw_stub.add_response("describe_alarms", states)
    cw_stub.add_response("describe_alarm_history", {"AlarmHistoryItems": []}, {"AlarmName": five_xx, **HISTORY})
    cw_stub.add_response("describe_alarm_history", {"AlarmHistoryItems": []}, {"AlarmName": latency, **HISTORY})
    cw_stub.add_response("describe_alarms", states)
    real_open = serving.release.aws.open_stack
    clients = {"sagemaker": sagemaker, "cloudwatch": cloudwatch}
    monkeypatch.setattr(serving.release.aws, "open_stack", lambda *a, **k: real_open(*a, **k, clients=clients))
    result = run("verify", "--stack", "dev", "--model", MODEL, "--actor", ACTOR)
    assert result.exit_code == 10, result.output
    assert "ENDPOINT NOT ON ITS PIN" in result.output and "SILENT ROLLBACK" in result.output
    assert f"cause: alarm(s) {alarm}" in result.output
    [entry] = _entries(tmp_path, "dev")
    assert entry.details["fired_alarms"] == [alarm] and entry.details["passed"] is False


def test_shadow_report_without_operational_metrics_is_inconclusive(run, registry, tmp_path) -> None:
    *_, production, candidate = registry.approved(versions=4)
    capture = tmp_path / "capture"
    rows = {f"r{i}": 0.1 + i / 1000 for i in range(300)}
    write_capture(capture, "dev", names.VARIANT, rows, NOW)
    write_capture(capture, "dev", names.SHADOW_VARIANT, rows, NOW)
    since = (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = run(
        "shadow",
        "report",
        "--stack",
        "dev",
        "--model",
        MODEL,
        "--package",
        candidate,
        "--capture",
        str(capture),
        "--since",
        since,
        "--no-cloudwatch",
        "--out",
        str(tmp_path / "report"),
        "--actor",
        ACTOR,
    )
    assert result.exit_code == 14, result.output
    assert "INCONCLUSIVE" in result.output and "300 matched requests" in result.output
    document = json.loads((tmp_path / "report" / "shadow-report.json").read_text())
    assert document["inputs"]["production_arn"] == production == package_arn(3)
    [entry] = _entries(tmp_path, "dev")
    assert entry.details["verdict"] == "inconclusive" and entry.package_arn == candidate
