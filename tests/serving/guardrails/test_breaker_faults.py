"""Issue 14's six circuit-breaker faults, each reproduced against moto (endpoints, configurations, SSM, SNS,
CloudWatch alarms) and Stubber (UpdateEndpoint, an endpoint mid-deployment). Each test failed on the first version
of the breaker (state `rolling-back` stuck, no alarm read, deferrals lost, no reconsideration, 16 remembered ids,
rolled-back on acceptance) and passes on the state machine."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from clinops.names import breaker_state_parameter
from serving.guardrails import breaker
from serving.guardrails.breaker import (
    LANDING_GRACE_SECONDS,
    RECOVERY_DELAY_SECONDS,
    Outcome,
    handle_event,
    rollback_request,
)
from serving.guardrails.events import RECONCILE_EVENT
from serving.guardrails.state import SsmStateStore
from tests.serving.conftest import BREAKER_ROLE, ENDPOINT, MODEL, STACK, T0, World, alarm_event, config

ROLLBACK = rollback_request(ENDPOINT, config(3), 1800)
DRIFT, QUALITY, SCORE = f"{ENDPOINT}-drift", f"{ENDPOINT}-quality", f"{ENDPOINT}-score-drift"


class LambdaKilled(BaseException):
    """The invocation dies (timeout, out of memory): nothing after this line runs, nothing is caught."""


def run(world: World, event: dict[str, Any]) -> list[Any]:
    return handle_event(event, world.clients(), SsmStateStore(world.ssm), world.clock, world.settings)


def tick(world: World) -> list[Any]:
    """The EventBridge schedule's invocation."""
    return run(world, dict(RECONCILE_EVENT))


def outcomes(decisions: list[Any]) -> list[str]:
    return [str(d.outcome) for d in decisions]


def state(world: World) -> dict[str, Any]:
    return json.loads(world.ssm.get_parameter(Name=breaker_state_parameter(STACK, MODEL))["Parameter"]["Value"])


def serving(world: World) -> str:
    return world.moto_sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def recorded(world: World) -> list[tuple[str, str]]:
    return [(e.details["event_id"], e.details["outcome"]) for e in world.entries()]


# 1. A crash, timeout or connection error between the intent and UpdateEndpoint --------------------------------


def test_1_a_connection_error_is_recorded_alerted_fails_the_invocation_and_is_recovered(world: World) -> None:
    world.sagemaker.lose_update(EndpointConnectionError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com"))
    [lost] = run(world, alarm_event("e-1"))
    assert lost.outcome is Outcome.INTERRUPTED and lost.must_fail  # the handler raises: retries, then the DLQ
    assert "Could not connect" in lost.reason and serving(world) == config(4)
    assert state(world)["phase"] == "requested"
    assert world.alerts()[0]["outcome"] == "interrupted" and recorded(world) == [("e-1", "interrupted")]

    world.clock.advance(60)  # EventBridge's retry: the claim is too young to be taken over; the event was decided
    assert outcomes(run(world, alarm_event("e-1"))) == ["duplicate"]
    second = run(world, alarm_event("e-2", QUALITY, at=world.clock()))  # a new alarm is not refused for cooldown
    assert outcomes(second) == ["deferred"] and [p["alarm"] for p in state(world)["pending"]] == [QUALITY]

    world.clock.advance(RECOVERY_DELAY_SECONDS)
    world.sagemaker.expect_update(ROLLBACK)
    recovered = tick(world)
    assert outcomes(recovered) == ["rolling-back", "rolled-back", "no-op"]  # the pending alarm: already on LKG
    assert serving(world) == config(3) and len(world.sagemaker.update_calls) == 2
    assert state(world)["phase"] == "landed" and state(world)["pending"] == []
    assert recovered[1].rollback_id == "e-1" and "(attempt 2 of 3)" in recovered[0].reason


def test_1_an_answer_lost_after_sagemaker_accepted_is_not_sent_twice(world: World) -> None:
    timeout = ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com")
    world.sagemaker.queue_describe("InService", 4)  # the judgement
    world.sagemaker.expect_update(ROLLBACK, lands=False, then_raise=timeout)
    assert outcomes(run(world, alarm_event("e-1"))) == ["interrupted"]

    world.clock.advance(RECOVERY_DELAY_SECONDS + 150)
    world.sagemaker.queue_describe("Updating", 4)
    assert outcomes(tick(world)) == ["rolling-back"] and state(world)["phase"] == "updating"
    world.serve(config(3))  # the deployment finishes
    assert outcomes(tick(world)) == ["rolled-back"]
    assert len(world.sagemaker.update_calls) == 1


def test_1_a_killed_invocation_is_recovered_by_the_schedule(world: World) -> None:
    world.sagemaker.lose_update(LambdaKilled())
    with pytest.raises(LambdaKilled):
        run(world, alarm_event("e-1"))
    assert state(world)["phase"] == "requested" and world.entries() == []  # nothing could be told: Errors alarm

    assert tick(world) == []  # the schedule does not race an invocation that may still be running
    world.clock.advance(RECOVERY_DELAY_SECONDS)
    world.sagemaker.expect_update(ROLLBACK)
    assert outcomes(tick(world)) == ["rolling-back", "rolled-back"]
    assert serving(world) == config(3)


def test_1_a_rollback_that_keeps_failing_to_send_gives_up_alerted(world: World) -> None:
    for _ in range(3):
        world.sagemaker.lose_update(EndpointConnectionError(endpoint_url="https://sagemaker"))
    run(world, alarm_event("e-1"))
    for _ in range(2):
        world.clock.advance(RECOVERY_DELAY_SECONDS)
        assert outcomes(tick(world)) == ["interrupted"]
    world.clock.advance(RECOVERY_DELAY_SECONDS)
    [gave_up] = tick(world)
    assert gave_up.outcome is Outcome.FAILED and "gave up after 3 UpdateEndpoint attempts" in gave_up.reason
    assert state(world)["last_action_at"] is None  # the cooldown is given back
    assert world.alerts()[-1]["outcome"] == "failed"


def test_1_any_aws_failure_is_alerted_recorded_and_fails_the_handler(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreachable:
        def describe_alarms(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com")

    services = {"sagemaker": world.sagemaker, "ssm": world.ssm, "sns": world.sns, "cloudwatch": Unreachable()}
    monkeypatch.setattr("boto3.client", lambda service, *a, **k: services[service])
    monkeypatch.setattr("serving.guardrails.outputs.s3_evidence_from_env", lambda stack: world.evidence)
    for key, value in {
        "STACK": STACK,
        "MODELS": MODEL,
        "TOPIC_ARN": world.topic_arn,
        "ACTOR_ARN": BREAKER_ROLE,
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match=r"circuit breaker error: .*Could not connect"):
        breaker.handler(alarm_event("e-1"), None)
    assert world.alerts()[0]["outcome"] == "error" and recorded(world) == [("e-1", "error")]
    assert world.sagemaker.update_calls == []


# 2. An ALARM delivered after its own OK --------------------------------------------------------------------------


def test_2_an_alarm_that_is_ok_again_does_not_roll_back(world: World) -> None:
    world.set_alarm("drift", "OK")
    [decision] = run(world, alarm_event("e-1"))
    assert decision.outcome is Outcome.CLEARED and "is OK now" in decision.reason
    assert world.sagemaker.update_calls == [] and serving(world) == config(4)
    assert recorded(world) == [("e-1", "cleared")] and world.alerts() == []


# 3. A drift alarm while the endpoint is Updating -----------------------------------------------------------------


def test_3_a_deferred_drift_alarm_is_alerted_kept_and_acted_on_when_the_deployment_ends(world: World) -> None:
    world.sagemaker.queue_describe("Updating", 4)
    [deferred] = run(world, alarm_event("e-1"))
    assert deferred.outcome is Outcome.DEFERRED
    assert (
        "not a SageMaker auto-rollback alarm" in deferred.reason and "auto-rollback alarms) own" not in deferred.reason
    )
    assert world.alerts()[0]["outcome"] == "deferred"

    world.clock.advance(30)
    world.sagemaker.queue_describe("Updating", 4)  # the pending alarm is judged again first
    assert outcomes(run(world, alarm_event("e-1"))) == ["duplicate"]  # the redelivery does not lose it...
    assert [p["alarm"] for p in state(world)["pending"]] == [DRIFT]  # ...because it is kept

    world.sagemaker.queue_describe("Updating", 4)
    assert tick(world) == []  # still deploying: nothing new to record or alert
    world.sagemaker.expect_update(ROLLBACK)
    done = tick(world)  # the deployment ended (moto: InService on v4); the alarm still fires
    assert outcomes(done) == ["rolling-back", "rolled-back"] and done[0].reconsidered
    assert serving(world) == config(3) and state(world)["pending"] == []


def test_3_a_deferred_alarm_that_stopped_firing_is_dropped_on_the_record(world: World) -> None:
    world.sagemaker.queue_describe("Updating", 4)
    run(world, alarm_event("e-1"))
    world.set_alarm("drift", "OK")
    assert outcomes(tick(world)) == ["cleared"]
    assert world.sagemaker.update_calls == [] and state(world)["pending"] == []


# 4. An alarm refused during the cooldown ------------------------------------------------------------------------


def test_4_an_alarm_refused_for_cooldown_is_acted_on_when_the_cooldown_ends_if_it_still_fires(world: World) -> None:
    world.sagemaker.expect_update(ROLLBACK)
    run(world, alarm_event("e-1"))
    world.serve(config(4))  # the pinned model was redeployed by hand
    world.clock.advance(600)
    [refused] = run(world, alarm_event("e-2", QUALITY, at=world.clock()))
    assert refused.outcome is Outcome.REFUSED and refused.reason.startswith("cooldown")
    assert [(p["alarm"], p["waits_for"]) for p in state(world)["pending"]] == [(QUALITY, "cooldown")]

    world.clock.advance(600)
    assert tick(world) == []  # the cooldown still runs
    world.clock.advance(600 + 30)
    world.sagemaker.expect_update(ROLLBACK)
    assert outcomes(tick(world)) == ["rolling-back", "rolled-back"]
    assert len(world.sagemaker.update_calls) == 2 and serving(world) == config(3)


# 5. Duplicate detection that forgets ----------------------------------------------------------------------------


def test_5_a_redelivered_refused_event_is_never_judged_again(world: World) -> None:
    world.record(pinned=4, last_known_good=None)
    assert outcomes(run(world, alarm_event("e-0"))) == ["refused"]
    for i in range(1, 41):  # 40 later transitions of the other alarms (the first version remembered 16 ids)
        signal = ("quality", "score-drift", "5xx-rate")[i % 3]
        run(world, alarm_event(f"e-{i}", f"{ENDPOINT}-{signal}", at=T0 + timedelta(minutes=i)))
    world.record(pinned=4, last_known_good=3)  # now a rollback would be possible
    world.clock.advance(25 * 3600)  # past EventBridge's 24 h of retries
    assert outcomes(run(world, alarm_event("e-0"))) == ["duplicate"]
    assert world.sagemaker.update_calls == []


def test_5_the_idempotency_record_is_bounded_by_the_alarms_not_the_events(world: World) -> None:
    for i in range(30):
        world.set_alarm("quality", "OK")
        run(world, alarm_event(f"q-{i}", QUALITY, at=T0 + timedelta(minutes=i)))
    assert list(state(world)["seen"]) == [QUALITY]


# 6. "rolled-back" on acceptance, and a deployment that never lands ----------------------------------------------


def test_6_rolled_back_is_recorded_only_in_service_on_the_last_known_good(world: World) -> None:
    world.sagemaker.queue_describe("InService", 4)  # the judgement
    world.sagemaker.expect_update(ROLLBACK, lands=False)
    world.sagemaker.queue_describe("Updating", 4)  # read once after the call
    [started] = run(world, alarm_event("e-1"))
    assert started.outcome is Outcome.ROLLING_BACK and state(world)["phase"] == "updating"
    assert "rolled-back" not in [o for _, o in recorded(world)]

    world.clock.advance(300)
    world.sagemaker.queue_describe("Updating", 3)
    assert tick(world) == []
    world.serve(config(3))
    assert outcomes(tick(world)) == ["rolled-back"] and state(world)["phase"] == "landed"


def test_6_a_rollback_that_never_lands_fails_alerted_and_frees_the_next_alarm(world: World) -> None:
    world.sagemaker.queue_describe("InService", 4)
    world.sagemaker.expect_update(ROLLBACK, lands=False)
    world.sagemaker.queue_describe("Updating", 4)
    run(world, alarm_event("e-1"))
    world.clock.advance(300)  # SageMaker rolled its deployment back: the endpoint is InService on v4 (moto)
    [failed] = tick(world)
    assert failed.outcome is Outcome.FAILED and f"did not land: endpoint serves {config(4)}" in failed.reason
    assert world.alerts()[-1]["outcome"] == "failed" and state(world)["last_action_at"] is None

    world.sagemaker.expect_update(ROLLBACK)  # five minutes later, not thirty: the cooldown was given back
    assert outcomes(run(world, alarm_event("e-2", QUALITY, at=world.clock()))) == ["rolling-back", "rolled-back"]


def test_6_a_rollback_stuck_updating_fails_after_sagemakers_timeout(world: World) -> None:
    world.sagemaker.queue_describe("InService", 4)
    world.sagemaker.expect_update(ROLLBACK, lands=False)
    world.sagemaker.queue_describe("Updating", 4)
    run(world, alarm_event("e-1"))
    world.clock.advance(1800 + LANDING_GRACE_SECONDS + 1)
    world.sagemaker.queue_describe("Updating", 4)
    [failed] = tick(world)
    assert failed.outcome is Outcome.FAILED and "did not land by" in failed.reason


def test_a_rollback_in_flight_defers_new_alarms_and_they_are_judged_after_it(world: World) -> None:
    world.sagemaker.queue_describe("InService", 4)
    world.sagemaker.expect_update(ROLLBACK, lands=False)
    world.sagemaker.queue_describe("Updating", 4)
    run(world, alarm_event("e-1"))
    world.clock.advance(60)
    world.sagemaker.queue_describe("Updating", 4)  # the recovery step looks first
    assert outcomes(run(world, alarm_event("e-2", SCORE, at=world.clock()))) == ["deferred"]
    world.serve(config(3))
    assert outcomes(tick(world)) == ["rolled-back", "no-op"]
