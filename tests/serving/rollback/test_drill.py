"""`clinops drill rollback`: moto alarms and SSM, a Stubber DescribeEndpoint sequence (serving the pin ->
Updating -> serving the last-known-good) and a fake clock whose sleep advances time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clinops.cli import rollback as cli
from clinops.evidence import EvidenceLog
from serving.guardrails.breaker import handle_event, rollback_request
from serving.guardrails.events import ALARM_DETAIL_TYPE, ALARM_SOURCE
from serving.guardrails.state import BreakerState, PendingAlarm, SsmStateStore
from serving.rollback.drill import DrillPlan, DrillRefused, DrillWindow, run_drill
from tests.serving.conftest import ENDPOINT, MODEL, STACK, T0, CallLog, World, config, stack_root

ALARM = f"{ENDPOINT}-score-drift"
OPERATOR = "arn:aws:sts::333333333333:assumed-role/sre/oncall"
WINDOW = DrillWindow.parse("2026-03-01T01:00Z/2026-03-01T05:00Z")


@pytest.fixture
def drill_world(world: World) -> Any:
    world.cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="clinops",
        MetricName="score-psi",
        Statistic="Maximum",
        Period=86400,
        EvaluationPeriods=1,
        Threshold=0.25,
        ComparisonOperator="GreaterThanThreshold",
    )
    log = CallLog(world.cloudwatch)
    yield world, log
    log.close()


def plan(**changes: Any) -> DrillPlan:
    return DrillPlan(
        **{
            "stack": STACK,
            "model": MODEL,
            "slo_seconds": 600,
            "actor": OPERATOR,
            "window": WINDOW,
            "poll_seconds": 10.0,
            **changes,
        }
    )


def failover(world: World, polls_updating: int) -> None:
    """What the breaker and SageMaker do after the forced alarm, as DescribeEndpoint shows it."""
    world.sagemaker.queue_describe("InService", 4)  # the preflight
    world.sagemaker.queue_describe("InService", 4)  # the first poll: the alarm has not propagated yet
    for poll in range(polls_updating):  # the last Updating poll already names the target: not served yet
        world.sagemaker.queue_describe("Updating", 3 if poll == polls_updating - 1 else 4)
    world.sagemaker.queue_describe("InService", 3)


def drill(world: World, drill_plan: DrillPlan) -> Any:
    return run_drill(
        drill_plan,
        sagemaker=world.sagemaker,
        cloudwatch=world.cloudwatch,
        ssm=world.ssm,
        evidence=world.evidence,
        clock=world.clock,
        sleep=world.clock.advance,
    )


def breaker_record(world: World, **fields: Any) -> None:
    store = SsmStateStore(world.ssm)
    record = BreakerState(outcome="x", last_event_id="e-0", alarm="a", alarm_at=None, decided_at="", reason="")
    store.commit(STACK, MODEL, store.read(STACK, MODEL), replace(record, **fields))


def test_a_drill_goes_through_the_real_breaker_and_records_the_phase_it_landed_in(drill_world: Any) -> None:
    """EventBridge is played by the sleep: each poll delivers the forced alarm's state change to the breaker."""
    world, calls = drill_world
    world.sagemaker.expect_update(rollback_request(ENDPOINT, config(3), 1800))

    def eventbridge_then_sleep(seconds: float) -> None:
        changes = [p for name, p in calls.sequence if name == "SetAlarmState" and p["StateValue"] == "ALARM"]
        event = {
            "id": "drill-event",
            "source": ALARM_SOURCE,
            "detail-type": ALARM_DETAIL_TYPE,
            "time": world.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "detail": {"alarmName": ALARM, "state": {"value": "ALARM", "reason": changes[-1]["StateReason"]}},
        }
        handle_event(event, world.clients(), SsmStateStore(world.ssm), world.clock, world.settings)
        world.clock.advance(seconds)

    result = run_drill(
        plan(),
        sagemaker=world.sagemaker,
        cloudwatch=world.cloudwatch,
        ssm=world.ssm,
        evidence=world.evidence,
        clock=world.clock,
        sleep=eventbridge_then_sleep,
    )
    assert result.outcome == "passed" and result.breaker_phase == "landed"
    assert world.entries("drill")[0].details["breaker_phase"] == "landed"
    assert [e.details["outcome"] for e in world.entries()] == ["rolling-back", "rolled-back"]
    assert alarm_state(world) == "OK"


def alarm_state(world: World) -> str:
    return world.cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["StateValue"]


def test_a_drill_measures_the_failover_records_it_and_restores_the_alarm(drill_world: Any) -> None:
    world, calls = drill_world
    failover(world, polls_updating=2)
    result = drill(world, plan())

    assert result.outcome == "passed" and result.seconds == 30.0
    assert [(o["status"], o["config"]) for o in result.observed] == [
        ("InService", config(4)),
        ("Updating", config(4)),
        ("Updating", config(3)),
        ("InService", config(3)),
    ]
    assert [p["StateValue"] for name, p in calls.sequence if name == "SetAlarmState"] == ["ALARM", "OK"]
    assert alarm_state(world) == "OK"
    [entry] = world.entries("drill")
    assert entry.actor == OPERATOR
    assert entry.details["measured_seconds"] == 30.0 and entry.details["passed"] is True
    assert entry.details["slo_seconds"] == 600 and entry.details["to_config"] == config(3)
    assert entry.details["authorisation"] == f"declared window {WINDOW}"
    world.sagemaker.describes.assert_no_pending_responses()


def test_a_slow_failover_fails_the_slo(drill_world: Any) -> None:
    world, _ = drill_world
    failover(world, polls_updating=3)
    result = drill(world, plan(slo_seconds=30))
    assert (result.outcome, result.seconds) == ("failed-slo", 40.0)
    assert world.entries("drill")[0].details["passed"] is False


def test_a_failover_that_never_comes_times_out_and_still_restores_the_alarm(drill_world: Any) -> None:
    world, _ = drill_world
    world.sagemaker.queue_describe("InService", 4)  # the preflight
    for _ in range(7):
        world.sagemaker.queue_describe("Updating", 4)
    result = drill(world, plan(timeout_seconds=60))

    assert (result.outcome, result.seconds) == ("timed-out", 60.0)
    assert alarm_state(world) == "OK"
    assert world.entries("drill")[0].details["outcome"] == "timed-out"


def test_a_failure_while_polling_still_restores_the_alarm(drill_world: Any) -> None:
    world, _ = drill_world
    world.sagemaker.queue_describe("InService", 4)  # the preflight
    world.sagemaker.describes.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded")
    world.sagemaker.queued_describes += 1
    with pytest.raises(Exception, match="Rate exceeded"):
        drill(world, plan())
    assert alarm_state(world) == "OK" and world.entries("drill") == []


LATER = DrillWindow.parse("2026-03-02T01:00Z/2026-03-02T05:00Z")


@pytest.mark.parametrize(
    ("setup", "window", "refusal"),
    [
        (lambda w: None, LATER, "outside the declared window"),
        (lambda w: w.record(pinned=4, last_known_good=None), WINDOW, "nothing to fail over to"),
        (lambda w: w.serve(config(3)), WINDOW, "already serves the last-known-good"),
        (lambda w: w.sagemaker.queue_describe("Updating", 4), WINDOW, "drill only a settled endpoint"),
        (lambda w: breaker_record(w, phase="requested", rollback_id="e-9"), WINDOW, "rollback e-9 is requested"),
        (
            lambda w: breaker_record(w, pending=(PendingAlarm(f"{ENDPOINT}-drift", "e-8", "x", "deployment"),)),
            WINDOW,
            "alarms are pending at the circuit breaker",
        ),
    ],
    ids=["window", "no-lkg", "on-lkg", "mid-deployment", "breaker-in-flight", "breaker-pending"],
)
def test_a_drill_the_breaker_would_refuse_is_refused_before_touching_the_alarm(
    drill_world: Any, setup: Any, window: DrillWindow, refusal: str
) -> None:
    world, calls = drill_world
    setup(world)
    with pytest.raises(DrillRefused, match=refusal):
        drill(world, plan(window=window))
    assert "SetAlarmState" not in calls.names and world.entries("drill") == []


def test_now_needs_a_real_reason(drill_world: Any) -> None:
    world, _ = drill_world
    with pytest.raises(DrillRefused, match="reason of at least"):
        drill(world, plan(window=None, now_reason="because"))
    failover(world, polls_updating=1)
    result = drill(world, plan(window=None, now_reason="post-incident verification, CAB-2231"))
    assert world.entries("drill")[0].details["authorisation"] == "--now: post-incident verification, CAB-2231"
    assert result.passed


def test_the_cli_runs_a_drill_and_exits_by_its_outcome(drill_world: Any, tmp_path: Path, monkeypatch: Any) -> None:
    world, _ = drill_world
    root = stack_root(tmp_path)
    monkeypatch.setattr(
        cli, "open_clients", lambda config: cli.StackClients(world.sagemaker, world.ssm, world.cloudwatch, OPERATOR)
    )
    monkeypatch.setattr(cli, "clock", world.clock)
    monkeypatch.setattr(cli, "sleep", world.clock.advance)
    failover(world, polls_updating=2)
    args = ["rollback", "--stack", STACK, "--model", MODEL, "--evidence", str(tmp_path / "ev"), "--root", str(root)]
    result = CliRunner().invoke(cli.drill_app, [*args, "--window", str(WINDOW)])
    assert result.exit_code == 0, result.output
    assert "passed" in result.output and "in 30.0 s (SLO 600 s)" in result.output
    [entry] = EvidenceLog.local(tmp_path / "ev" / STACK, STACK).entries()
    assert entry.details["measured_seconds"] == 30.0

    refused = CliRunner().invoke(cli.drill_app, [*args, "--now"])
    assert refused.exit_code == 2 and "--now and --reason go together" in refused.output


def test_windows_must_carry_a_zone_and_end_after_they_start() -> None:
    assert DrillWindow.parse("2026-03-01T02:00+01:00/2026-03-01T03:00+01:00").start == T0 + timedelta(hours=-1)
    for bad in ("2026-03-01T02:00/2026-03-01T03:00", "2026-03-01T03:00Z/2026-03-01T02:00Z", "tomorrow"):
        with pytest.raises(ValueError, match="not a window"):
            DrillWindow.parse(bad)
