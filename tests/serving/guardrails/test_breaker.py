"""The circuit breaker against moto (endpoints, configurations, SSM, SNS) and Stubber (UpdateEndpoint, an
endpoint mid-deployment): every path of the decision, duplicates, order, concurrency and cooldown."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from clinops.names import breaker_state_parameter, last_known_good_parameter, verified_parameter
from serving.guardrails.breaker import Outcome, handle_alarm_event, rollback_request
from serving.guardrails.outputs import LazyEvidence
from serving.guardrails.state import SsmStateStore
from tests.serving.conftest import (
    BREAKER_ROLE,
    ENDPOINT,
    MODEL,
    STACK,
    T0,
    World,
    alarm_event,
    config,
    package,
)
from tests.serving.guardrails.shapes import violations

ROLLBACK = rollback_request(ENDPOINT, config(3), 1800)


def run(world: World, event: dict[str, Any], store: SsmStateStore | None = None) -> Any:
    return handle_alarm_event(event, world.clients(), store or SsmStateStore(world.ssm), world.clock, world.settings)


def serving(world: World) -> str:
    return world.moto_sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def state(world: World) -> dict[str, Any]:
    return json.loads(world.ssm.get_parameter(Name=breaker_state_parameter(STACK, MODEL))["Parameter"]["Value"])


def test_the_rollback_request_is_valid_for_sagemaker_and_does_not_bake_or_watch_alarms() -> None:
    assert violations("sagemaker", "UpdateEndpoint", ROLLBACK) == []
    policy = ROLLBACK["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    assert policy["TerminationWaitInSeconds"] == 0
    assert "AutoRollbackConfiguration" not in ROLLBACK["DeploymentConfig"]  # the alarm that fired is in ALARM
    assert ROLLBACK["RetainDeploymentConfig"] is False and ROLLBACK["RetainAllVariantProperties"] is True


def test_a_drift_alarm_rolls_back_to_the_verified_last_known_good_records_and_notifies(world: World) -> None:
    world.sagemaker.expect_update(ROLLBACK)
    decision = run(world, alarm_event("e-1"))

    assert decision.outcome is Outcome.ROLLED_BACK
    assert serving(world) == config(3)
    world.sagemaker.updates.assert_no_pending_responses()
    started, entry = world.entries()
    assert started.details["outcome"] == "rolling-back" and started.details["phase"] == "updating"
    assert started.reason.startswith(f"{ENDPOINT}-drift: Threshold Crossed")
    assert entry.actor == BREAKER_ROLE and entry.package_arn == package(3)
    assert entry.details["outcome"] == "rolled-back" and entry.details["phase"] == "landed"
    assert entry.details["rollback_id"] == "e-1"
    assert (entry.details["from_config"], entry.details["to_config"]) == (config(4), config(3))
    _, alert = world.alerts()
    assert alert["outcome"] == "rolled-back" and alert["to_config"] == config(3)
    assert alert["evidence_seq"] == entry.seq
    recorded = state(world)
    assert recorded["outcome"] == "rolled-back" and recorded["phase"] == "landed" and recorded["rollback_id"] == "e-1"
    assert (recorded["from"], recorded["to"]) == (config(4), config(3))
    assert recorded["last_action_at"] == "2026-03-01T02:00:30.000Z"


def test_a_duplicate_event_acts_once(world: World) -> None:
    world.sagemaker.expect_update(ROLLBACK)  # one response only: a second UpdateEndpoint would raise
    first = run(world, alarm_event("e-1"))
    world.clock.advance(5)
    again = run(world, alarm_event("e-1"))

    assert (first.outcome, again.outcome) == (Outcome.ROLLED_BACK, Outcome.DUPLICATE)
    assert len(world.sagemaker.update_calls) == 1
    assert len(world.entries()) == 2 and len(world.alerts()) == 2  # rolling-back, rolled-back: nothing more


def test_a_duplicate_refusal_is_recorded_once(world: World) -> None:
    world.ssm.put_parameter(Name=last_known_good_parameter(STACK, MODEL), Value="none", Type="String", Overwrite=True)
    outcomes = [run(world, alarm_event("e-9")).outcome for _ in range(3)]
    assert outcomes == [Outcome.REFUSED, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(world.entries()) == 1 and len(world.alerts()) == 1


def test_an_alarm_older_than_the_last_rollback_is_ignored_as_out_of_order(world: World) -> None:
    world.sagemaker.expect_update(ROLLBACK)
    run(world, alarm_event("late-but-newer", at=T0 + timedelta(seconds=20)))
    world.serve(config(4))  # even if the pinned model were back, a stale alarm must not move it
    late = run(world, alarm_event("early-but-late", f"{ENDPOINT}-latency-p99", at=T0 + timedelta(seconds=10)))

    assert late.outcome is Outcome.STALE
    assert "before the last rollback" in late.reason
    assert len(world.sagemaker.update_calls) == 1 and serving(world) == config(4)
    assert [e.details["outcome"] for e in world.entries()] == ["rolling-back", "rolled-back", "stale"]


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (alarm_event("ok", state="OK"), "not ALARM"),
        (alarm_event("other-stack", "clinops-staging-readmission-risk-drift"), "belongs to no endpoint"),
        (alarm_event("unknown-signal", f"{ENDPOINT}-cpu"), "belongs to no endpoint"),
        ({"detail-type": "Something Else", "id": "x"}, "not a CloudWatch alarm"),
    ],
)
def test_events_that_are_not_our_alarms_are_ignored_without_writing_anything(
    world: World, event: dict[str, Any], why: str
) -> None:
    decision = run(world, event)
    assert decision.outcome is Outcome.IGNORED and why in decision.reason
    assert world.ssm.get_parameters(Names=[breaker_state_parameter(STACK, MODEL)])["Parameters"] == []
    assert world.entries() == [] and world.alerts() == []


def test_the_longest_model_name_owns_an_alarm(world: World) -> None:
    settings = replace(world.settings, models=("readmission", MODEL))
    event = alarm_event("e-1", f"{ENDPOINT}-quality")
    world.sagemaker.expect_update(ROLLBACK)
    decision = handle_alarm_event(event, world.clients(), SsmStateStore(world.ssm), world.clock, settings)
    assert decision.model == MODEL and decision.outcome is Outcome.ROLLED_BACK


@pytest.mark.parametrize(
    ("status", "signal", "owner"),
    [
        ("Updating", "drift", "not a SageMaker auto-rollback alarm"),
        ("RollingBack", "quality", "not a SageMaker auto-rollback alarm"),
        ("SystemUpdating", "5xx-rate", "SageMaker's auto-rollback acts on it if the running deployment lists it"),
    ],
)
def test_mid_deployment_the_breaker_stands_aside_keeps_the_alarm_pending_and_alerts(
    world: World, status: str, signal: str, owner: str
) -> None:
    world.sagemaker.queue_describe(status, 5)
    decision = run(world, alarm_event("e-1", f"{ENDPOINT}-{signal}"))

    assert decision.outcome is Outcome.DEFERRED
    assert world.sagemaker.update_calls == []
    [entry] = world.entries()
    assert entry.details["outcome"] == "deferred" and entry.details["pending"] == [f"{ENDPOINT}-{signal}"]
    assert f"endpoint is {status}" in entry.details["explanation"] and owner in entry.details["explanation"]
    assert world.alerts()[0]["outcome"] == "deferred"
    assert [p["alarm"] for p in state(world)["pending"]] == [f"{ENDPOINT}-{signal}"]


def test_no_last_known_good_recorded_is_refused_and_alerted(world: World) -> None:
    world.record(pinned=4, last_known_good=None)
    decision = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.REFUSED and "none" in decision.reason
    assert world.sagemaker.update_calls == [] and serving(world) == config(4)
    assert world.entries()[0].details["outcome"] == "refused"
    assert world.alerts()[0]["outcome"] == "refused"


def test_a_last_known_good_missing_in_sagemaker_is_refused(world: World) -> None:
    world.record(pinned=4, last_known_good=2)  # v2's configuration was never created
    decision = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.REFUSED
    assert decision.reason == f"last-known-good configuration {config(2)} does not exist in SageMaker"
    assert world.sagemaker.update_calls == []


def test_an_unverified_last_known_good_is_refused(world: World) -> None:
    world.ssm.delete_parameter(Name=verified_parameter(STACK, MODEL, config(3)))
    decision = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.REFUSED and "is not verified: no readable verification marker" in decision.reason
    assert world.sagemaker.update_calls == []


def test_a_re_created_configuration_no_longer_counts_as_verified(world: World) -> None:
    world.moto_sagemaker.delete_endpoint_config(EndpointConfigName=config(3))
    world.clock.advance(60)
    world.moto_sagemaker.delete_model(ModelName=config(3))
    world.add_config(3)  # same name, new object (moto stamps the current time)
    decision = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.REFUSED and "re-created and is unverified" in decision.reason


def test_an_endpoint_already_on_the_last_known_good_is_a_no_op(world: World) -> None:
    world.serve(config(3))
    decision = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.NOOP
    assert world.sagemaker.update_calls == [] and world.alerts() == []
    assert world.entries()[0].details["outcome"] == "no-op"


def test_cooldown_refuses_a_second_switch_then_allows_it(world: World) -> None:
    world.sagemaker.expect_update(ROLLBACK)
    run(world, alarm_event("e-1"))
    world.serve(config(4))  # someone redeployed the pinned model
    world.clock.advance(600)
    flapping = run(world, alarm_event("e-2", at=world.clock()))
    assert flapping.outcome is Outcome.REFUSED and flapping.reason.startswith("cooldown")
    assert world.alerts()[-1]["outcome"] == "refused"

    world.clock.advance(1800)
    world.set_alarm("drift", "OK")  # e-2's alarm stopped firing: nothing to reconsider
    world.sagemaker.expect_update(ROLLBACK)
    later = run(world, alarm_event("e-3", f"{ENDPOINT}-quality", at=world.clock()))
    assert later.outcome is Outcome.ROLLED_BACK and len(world.sagemaker.update_calls) == 2
    assert "e-2" in [e.details["event_id"] for e in world.entries() if e.details["outcome"] == "cleared"]


def test_a_failed_update_is_recorded_and_does_not_claim_the_cooldown(world: World) -> None:
    world.sagemaker.fail_update("ValidationException", "Cannot update in-progress endpoint")
    failed = run(world, alarm_event("e-1"))
    assert failed.outcome is Outcome.FAILED and "Cannot update in-progress endpoint" in failed.reason
    assert state(world)["last_action_at"] is None
    assert world.alerts()[0]["outcome"] == "failed"

    world.clock.advance(60)
    world.sagemaker.expect_update(ROLLBACK)
    assert run(world, alarm_event("e-2", at=world.clock())).outcome is Outcome.ROLLED_BACK


def test_a_lost_evidence_record_does_not_undo_the_rollback_but_is_alerted(world: World) -> None:
    def no_evidence_layer() -> Any:
        raise ModuleNotFoundError("No module named 'pydantic'")

    world.sagemaker.expect_update(ROLLBACK)
    clients = replace(world.clients(), evidence=LazyEvidence(no_evidence_layer))
    decision = handle_alarm_event(alarm_event("e-1"), clients, SsmStateStore(world.ssm), world.clock, world.settings)
    assert decision.outcome is Outcome.ROLLED_BACK and serving(world) == config(3)
    assert "No module named 'pydantic'" in decision.evidence_error
    assert "No module named 'pydantic'" in world.alerts()[0]["evidence_error"]


def test_the_lambda_handler_wires_settings_from_its_environment_and_fails_loudly_on_a_lost_record(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.guardrails import breaker

    for key, value in {
        "STACK": STACK,
        "MODELS": f"{MODEL}, sepsis-warning",
        "TOPIC_ARN": world.topic_arn,
        "ACTOR_ARN": BREAKER_ROLE,
        "COOLDOWN_SECONDS": "900",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EVIDENCE_BUCKET", raising=False)  # the evidence log cannot be opened
    world.record(pinned=4, last_known_good=None)
    with pytest.raises(RuntimeError, match="circuit breaker refused: KeyError"):
        breaker.handler(alarm_event("e-1"), None)
    [alert] = world.alerts()
    assert alert["outcome"] == "refused" and "EVIDENCE_BUCKET" in alert["evidence_error"]
    assert state(world)["last_event_id"] == "e-1"  # decided and remembered: EventBridge's retry is a duplicate


class BarrierStore(SsmStateStore):
    """Every thread's first commit waits until all have decided: they all decide on the same snapshot."""

    def __init__(self, ssm: Any, parties: int) -> None:
        super().__init__(ssm)
        self.barrier, self.first = threading.Barrier(parties), threading.local()
        self.lock = threading.Lock()

    def commit(self, *args: Any) -> bool:
        if not getattr(self.first, "done", False):
            self.first.done = True
            self.barrier.wait(timeout=10)
        with self.lock:  # SSM orders writes to one parameter; moto's in-memory store needs the help
            return super().commit(*args)


@pytest.mark.parametrize("earlier_decision", [False, True], ids=["creates-the-record", "overwrites-the-record"])
@pytest.mark.parametrize("same_event", [False, True], ids=["two-alarms", "one-event-delivered-twice"])
def test_two_concurrent_invocations_exactly_one_acts(world: World, same_event: bool, earlier_decision: bool) -> None:
    if earlier_decision:  # the race is then decided by version succession, not by ParameterAlreadyExists
        world.set_alarm("score-drift", "OK")
        earlier = alarm_event("e-0", f"{ENDPOINT}-score-drift", at=T0 - timedelta(hours=1))
        assert run(world, earlier).outcome is Outcome.CLEARED
        world.set_alarm("score-drift", "ALARM")
    world.sagemaker.expect_update(ROLLBACK)  # a second UpdateEndpoint would raise inside its thread
    store = BarrierStore(world.ssm, 2)
    events = [alarm_event("e-1"), alarm_event("e-1") if same_event else alarm_event("e-2", f"{ENDPOINT}-quality")]
    decisions: list[Any] = []
    errors: list[BaseException] = []

    def invoke(event: dict[str, Any]) -> None:
        try:
            decisions.append(run(world, event, store))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=invoke, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    outcomes = sorted(str(d.outcome) for d in decisions)
    assert outcomes == sorted(["rolled-back", "duplicate" if same_event else "stale"])
    assert len(world.sagemaker.update_calls) == 1 and serving(world) == config(3)
    assert len([e for e in world.entries() if e.details["outcome"] == "rolled-back"]) == 1
