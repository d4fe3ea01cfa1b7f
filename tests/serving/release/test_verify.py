"""`verify`: healthy, silently rolled back (alarm named), drifted, busy, capture off, alarm firing, cross-account.

SSM pins and CloudWatch alarms live in moto (what `pulumi up` leaves behind); SageMaker endpoint state comes
from Stubber (moto endpoints are always InService on their first config and moto has no alarm history).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from botocore.stub import ANY

from clinops import names
from clinops.config import load_from_stack_file
from clinops.exitcodes import ExitCode
from serving.guardrails.verified import read_marker
from serving.release.aws import open_stack
from serving.release.evidence import CHECK_DEPLOYMENT, EvidenceLocation, trusted_history
from serving.release.release import find_model
from serving.release.verify import Verifier, VerifyReport, record_verification
from tests.serving.release.helpers import (
    ACTOR,
    MODEL,
    NOW,
    PROD_ACCOUNT,
    deploy_alarms_and_pins,
    endpoint_config_description,
    endpoint_description,
    package_arn,
    stack_aws,
    stubbed,
)

DEV_PIN = names.config_name("dev", MODEL, package_arn(3))
STAGING_PIN, STAGING_LKG = (names.config_name("staging", MODEL, package_arn(v)) for v in (3, 2))


def _verify(project: Path, stack: str, aws) -> VerifyReport:
    config = load_from_stack_file(stack, project)
    return Verifier(aws, lookback=dt.timedelta(hours=6), now=NOW).verify(config, find_model(config, MODEL))


def _sagemaker(stack: str, serving: str, pinned_package: str | None = None, marked: bool = False, **endpoint):
    """Stubbed SageMaker: the endpoint, then its configuration (read by verify, and again when marking it)."""
    client, stub = stubbed("sagemaker")
    endpoint_name = names.endpoint_name(stack, MODEL)
    described = endpoint_description(stack, serving, **endpoint)
    stub.add_response("describe_endpoint", described, {"EndpointName": endpoint_name})
    for _ in range((1 + marked) if pinned_package else 0):
        stub.add_response(
            "describe_endpoint_config",
            endpoint_config_description(stack, serving, pinned_package),
            {"EndpointConfigName": serving},
        )
    return client, stub


def _levels(report: VerifyReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.level)
    return found


def test_healthy_endpoint_passes_is_recorded_and_marked_verified(session, project, tmp_path) -> None:
    deploy_alarms_and_pins(session, "dev", DEV_PIN)
    client, stub = _sagemaker("dev", DEV_PIN, package_arn(3), marked=True)
    aws = stack_aws(session, sagemaker=client)
    report = _verify(project, "dev", aws)
    assert report.exit_code == ExitCode.OK, report.findings
    assert set(_levels(report)) >= {
        "endpoint",
        "deployed-pin",
        "serving-config",
        "models",
        "data-capture",
        "alarms",
        "weights",
        "instances",
        "shadow",
        "auto-rollback",
    }
    assert all(levels == {"pass"} for levels in _levels(report).values())
    evidence = EvidenceLocation(str(tmp_path / "evidence"))
    record_verification(report, evidence, actor=ACTOR, reason="post-deploy verification", aws=aws, clock=lambda: NOW)
    stub.assert_no_pending_responses()
    [entry] = trusted_history(evidence.log("dev"), MODEL)
    assert (entry.kind.value, entry.details["check"]) == ("verification", CHECK_DEPLOYMENT)
    assert entry.details["passed"] is True
    assert entry.package_arn == package_arn(3)
    # The circuit breaker may now roll back to this configuration: its marker points at this evidence entry.
    marker = read_marker(session.client("ssm"), "dev", MODEL, DEV_PIN)
    assert marker is not None and marker.evidence == str(entry.anchor) and marker.verified_by == ACTOR


def test_silent_rollback_is_reported_with_the_alarm_that_caused_it(session, project, tmp_path) -> None:
    deploy_alarms_and_pins(session, "staging", STAGING_PIN, STAGING_LKG)
    sagemaker, _ = _sagemaker("staging", STAGING_LKG)  # SageMaker rolled back to the last-known-good config
    cloudwatch, stub = stubbed("cloudwatch")
    alarms = names.alarm_names("staging", MODEL)
    ok = {"MetricAlarms": [{"AlarmName": a, "StateValue": "OK", "ActionsEnabled": True} for a in alarms]}
    stub.add_response("describe_alarms", ok, {"AlarmNames": alarms})
    fired = {
        "AlarmHistoryItems": [
            {
                "AlarmName": alarms[0],
                "HistoryItemType": "StateUpdate",
                "Timestamp": NOW - dt.timedelta(hours=2),
                "HistorySummary": "Alarm updated from OK to ALARM",
            }
        ]
    }
    for alarm, history in zip(alarms, [fired, {"AlarmHistoryItems": []}, {"AlarmHistoryItems": []}], strict=True):
        expected = {
            "AlarmName": alarm,
            "HistoryItemType": "StateUpdate",
            "StartDate": NOW - dt.timedelta(hours=6),
            "EndDate": NOW,
            "ScanBy": "TimestampDescending",
            "MaxRecords": ANY,
        }
        stub.add_response("describe_alarm_history", history, expected)
    stub.add_response("describe_alarms", ok, {"AlarmNames": alarms})
    aws = stack_aws(session, sagemaker=sagemaker, cloudwatch=cloudwatch)
    report = _verify(project, "staging", aws)
    assert report.exit_code == ExitCode.ROLLED_BACK
    [rollback] = [f for f in report.findings if f.level == "rollback"]
    assert rollback.message.startswith("SILENT ROLLBACK")
    assert f"serves the last-known-good configuration {STAGING_LKG}, not the pinned {STAGING_PIN}" in rollback.message
    assert "clinops-staging-readmission-risk-5xx-rate" in rollback.message
    assert report.fired_alarms == ["clinops-staging-readmission-risk-5xx-rate"]
    stub.assert_no_pending_responses()
    evidence = EvidenceLocation(str(tmp_path / "evidence"))
    record_verification(report, evidence, actor=ACTOR, reason="post-deploy verification", aws=aws)
    assert read_marker(session.client("ssm"), "staging", MODEL, STAGING_LKG) is None  # nothing marked verified
    [entry] = trusted_history(evidence.log("staging"), MODEL)
    assert entry.details["passed"] is False and entry.details["exit_code"] == 10
    assert entry.details["fired_alarms"] == report.fired_alarms


def test_a_pin_that_was_never_deployed_is_drift(session, project) -> None:
    deploy_alarms_and_pins(session, "dev", names.config_name("dev", MODEL, package_arn(2)))
    client, _ = _sagemaker("dev", DEV_PIN, package_arn(3))
    report = _verify(project, "dev", stack_aws(session, sagemaker=client))
    assert report.exit_code == ExitCode.ROLLED_BACK
    assert "was not deployed (run pulumi up)" in next(f.message for f in report.findings if f.check == "deployed-pin")


def test_a_stack_never_deployed_is_its_own_state_not_a_rollback(session, project, tmp_path: Path) -> None:
    client, stub = stubbed("sagemaker")
    endpoint = names.endpoint_name("dev", MODEL)
    stub.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f'Could not find endpoint "{endpoint}".',
        expected_params={"EndpointName": endpoint},
    )
    report = _verify(project, "dev", stack_aws(session, sagemaker=client))  # no SSM pins: never deployed
    assert report.exit_code == ExitCode.NOT_DEPLOYED == 17
    [finding] = report.findings
    assert finding.level == "not-deployed" and "was never deployed" in finding.message
    assert "rollback" not in {f.level for f in report.findings}
    record_verification(
        report, EvidenceLocation(str(tmp_path / "evidence")), actor=ACTOR, reason="first verification", aws=None
    )


def test_endpoint_mid_update_is_busy(session, project) -> None:
    deploy_alarms_and_pins(session, "dev", DEV_PIN)
    client, _ = _sagemaker("dev", DEV_PIN, status="Updating")
    report = _verify(project, "dev", stack_aws(session, sagemaker=client))
    assert report.exit_code == ExitCode.ENDPOINT_BUSY
    assert _levels(report)["endpoint"] == {"busy"}


def test_capture_off_and_wrong_capacity_are_unhealthy(session, project) -> None:
    deploy_alarms_and_pins(session, "dev", DEV_PIN)
    client, _ = _sagemaker("dev", DEV_PIN, package_arn(3), capture=False, instances=3)
    report = _verify(project, "dev", stack_aws(session, sagemaker=client))
    assert report.exit_code == ExitCode.DEPLOYMENT_UNHEALTHY
    levels = _levels(report)
    assert levels["data-capture"] == {"unhealthy"} and levels["instances"] == {"unhealthy"}
    assert levels["serving-config"] == {"pass"}


def test_an_alarm_in_alarm_state_is_named(session, project) -> None:
    deploy_alarms_and_pins(session, "dev", DEV_PIN)
    latency = "clinops-dev-readmission-risk-latency-p99"
    session.client("cloudwatch").set_alarm_state(AlarmName=latency, StateValue="ALARM", StateReason="p99 612 ms")
    session.client("cloudwatch").delete_alarms(AlarmNames=["clinops-dev-readmission-risk-invalid-scores"])
    client, _ = _sagemaker("dev", DEV_PIN, package_arn(3))
    report = _verify(project, "dev", stack_aws(session, sagemaker=client))
    assert report.exit_code == ExitCode.DEPLOYMENT_UNHEALTHY
    messages = [f.message for f in report.findings if f.check == "alarms" and f.level == "unhealthy"]
    assert messages == [
        f"ALARM STATE: {latency} is ALARM (p99 612 ms)",
        "rollback alarm clinops-dev-readmission-risk-invalid-scores is missing",
    ]


def test_cross_account_verify_reads_the_prod_account(session, project) -> None:
    config = load_from_stack_file("prod", project)
    pinned = names.config_name("prod", MODEL, package_arn(2))
    client, _ = _sagemaker("prod", pinned, package_arn(2), instances=2)
    aws = open_stack(config, ACTOR, session, clients={"sagemaker": client})
    deploy_alarms_and_pins(aws.session, "prod", pinned, names.config_name("prod", MODEL, package_arn(1)))
    assert aws.session.client("sts").get_caller_identity()["Account"] == PROD_ACCOUNT
    assert not session.client("ssm").describe_parameters()["Parameters"]  # nothing in the caller's own account
    report = Verifier(aws, now=NOW).verify(config, find_model(config, MODEL))
    assert report.exit_code == ExitCode.OK, report.findings
