"""Property test of the circuit breaker: hypothesis drives random interleavings of alarm transitions (ALARM/OK),
their deliveries and redeliveries, schedule ticks, the clock, deployments that land or fail back, a broken
endpoint - and breaks any one AWS call of an invocation (throttled, no connection, answer lost after the call took
effect, the invocation killed before or after a call). Then the world settles (no faults, deployments end, time
passes, the schedule runs) and the invariants are checked:

1. never two rollbacks within a cooldown: two UpdateEndpoint calls SageMaker accepted for *different* rollbacks
   less than the cooldown apart only when the earlier one was recorded failed in between;
2. never a silent drop of an ALARM that still fires: its newest transition was recorded in the evidence, or is
   pending, or an invocation carrying it failed loudly (Errors alarm, retries, DLQ) - and once the world settles
   nothing is left pending or in flight;
3. every decision is in the evidence (or the invocation fails, alerting), every alerted outcome was published (or
   the invocation fails); `landed` is written only while the endpoint is InService on the rollback's target.

Deterministic: derandomized, no example database, bounded budget (measured in the report: ~200 examples)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clinops.names import breaker_state_parameter, config_name, endpoint_name
from serving.guardrails.breaker import (
    MAX_SWITCH_ATTEMPTS,
    BreakerSettings,
    Clients,
    Decision,
    Outcome,
    handle_event,
)
from serving.guardrails.events import RECONCILE_EVENT, iso
from serving.guardrails.state import IN_FLIGHT, LANDED, SsmStateStore
from serving.guardrails.verified import mark_verified
from tests.serving.guardrails.breaker_fakes import FAULT_KINDS, FakeSageMaker, FakeWorld, Faults, Faulty, LambdaKilled

STACK, MODEL = "prod", "readmission-risk"
ENDPOINT = endpoint_name(STACK, MODEL)
SIGNALS = ("drift", "quality", "score-drift")
ALARMS = tuple(f"{ENDPOINT}-{s}" for s in SIGNALS)
PACKAGE = "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/{}"
PINNED, LKG = config_name(STACK, MODEL, PACKAGE.format(4)), config_name(STACK, MODEL, PACKAGE.format(3))
COOLDOWN = 1800
# What must be recorded and alerted, stated here rather than imported, so the test judges the code's own lists.
RECORDED = frozenset(Outcome) - {Outcome.IGNORED, Outcome.DUPLICATE}
ALERTED = frozenset(Outcome) - {Outcome.IGNORED, Outcome.DUPLICATE, Outcome.STALE, Outcome.CLEARED, Outcome.NOOP}
JUDGEMENTS = frozenset({Outcome.STALE, Outcome.CLEARED, Outcome.DEFERRED, Outcome.REFUSED, Outcome.NOOP})
SWITCH_ANSWERS = frozenset({Outcome.ROLLING_BACK, Outcome.INTERRUPTED, Outcome.FAILED})
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Delivery:
    event: dict[str, Any]
    alarm: str
    at: datetime
    delivered: bool = False


@dataclass
class Run:
    """One example: the world, what was delivered, and what the breaker answered."""

    clock: Clock = field(default_factory=Clock)
    events: list[Delivery] = field(default_factory=list)
    loud: set[str] = field(default_factory=set)  # event ids of deliveries whose invocation failed or died
    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    faults_fired: int = 0

    def __post_init__(self) -> None:
        self.world = FakeWorld(self.clock, breaker_state_parameter(STACK, MODEL))
        configs = {PINNED: T0 - timedelta(days=30), LKG: T0 - timedelta(days=60)}
        self.world.sagemaker = FakeSageMaker(self.world, PINNED, configs)
        self.world.ssm.put_parameter(Name=f"/clinops/{STACK}/{MODEL}/last-known-good-endpoint-config", Value=LKG)
        for config, version in ((LKG, 3), (PINNED, 4)):
            mark_verified(
                self.world.ssm,
                self.world.sagemaker,
                stack=STACK,
                model=MODEL,
                endpoint_config=config,
                package_arn=PACKAGE.format(version),
                evidence_anchor="1:" + "a" * 64,
                actor="verifier",
                clock=self.clock,
            )
        for alarm in ALARMS:
            self.world.cloudwatch.set(alarm, "OK", T0 - timedelta(days=1))
        self.faults = Faults(seen=self.world.saw)
        w = self.world
        self.clients = Clients(
            Faulty(w.sagemaker, self.faults),
            Faulty(w.ssm, self.faults),
            Faulty(w.sns, self.faults),
            Faulty(w.evidence, self.faults),
            Faulty(w.cloudwatch, self.faults),
        )
        self.settings = BreakerSettings(
            STACK, (MODEL,), "arn:aws:sns:us-east-1:111111111111:alerts", "breaker", cooldown_seconds=COOLDOWN
        )

    # ------------------------------------------------------------------------------------------- actions
    def invoke(self, event: dict[str, Any], fault: tuple[int, str] | None) -> None:
        before = self.world.breaker_state()
        self.faults.arm(fault)
        try:
            decisions = handle_event(event, self.clients, SsmStateStore(self.clients.ssm), self.clock, self.settings)
        except LambdaKilled:
            decisions, failed = [], True
        else:
            failed = any(d.must_fail for d in decisions)
        finally:
            self.faults_fired += self.faults.fired
            self.faults.disarm()
        if failed:  # loud: the Errors alarm, retries, the DLQ - for this event and whatever it was moving on
            self.loud.add(event.get("id"))
            if before is not None:
                self.loud |= {before.rollback_id, *(p.event_id for p in before.pending)}
            self.loud |= {d.event_id for d in decisions}
        for d in decisions:
            self.decisions.append(d)
            if d.outcome in RECORDED and d.model and d.evidence_seq is None and not d.must_fail:
                self.problems.append(f"decision not in the evidence and not failing: {d}")
            if d.outcome in ALERTED and not d.notified and not d.must_fail:
                self.problems.append(f"alerted outcome not published and not failing: {d}")

    def fire(self, alarm: str, deliver: bool, fault: tuple[int, str] | None) -> None:
        """The alarm enters ALARM; its event is delivered now, or later (EventBridge delays and reorders)."""
        if not self.world.cloudwatch.set(alarm, "ALARM", self.clock()):
            return
        event = {
            "id": f"ev-{len(self.events)}",
            "source": "aws.cloudwatch",
            "detail-type": "CloudWatch Alarm State Change",
            "time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "detail": {"alarmName": alarm, "state": {"value": "ALARM", "reason": "t", "timestamp": iso(self.clock())}},
        }
        self.events.append(Delivery(event, alarm, self.clock()))
        if deliver:
            self.deliver(len(self.events) - 1, fault)

    def deliver(self, index: int, fault: tuple[int, str] | None) -> None:
        if self.events:
            delivery = self.events[index % len(self.events)]
            delivery.delivered = True
            self.invoke(delivery.event, fault)

    def tick(self, fault: tuple[int, str] | None) -> None:
        self.invoke(dict(RECONCILE_EVENT), fault)

    def settle(self) -> None:
        """No more faults or alarms: EventBridge delivers what it still held (at least once), deployments end,
        time passes beyond every delay, the schedule runs."""
        for index, delivery in enumerate(self.events):
            if not delivery.delivered:
                self.deliver(index, None)
        for round_ in range(6):
            self.world.sagemaker.settle(lands=round_ % 2 == 0)
            self.clock.advance(COOLDOWN + 1)
            self.tick(None)

    # ---------------------------------------------------------------------------------------- invariants
    def check(self) -> list[str]:
        problems = list(self.problems)
        commits = [c for c in self.world.ssm.commits if c.state is not None]
        previous, failed_rollbacks = None, set()
        for c in commits:
            state = c.state
            landed = state.phase == LANDED and state.outcome == "rolled-back"
            if landed and c.endpoint != ("InService", state.to_config):  # 3: landed only InService on the target
                problems.append(f"landed recorded while the endpoint was {c.endpoint}: {state}")
            new_rollback = state.phase == "requested" and (
                previous is None or previous.rollback_id != state.rollback_id
            )
            if new_rollback and c.alarms.get(state.rollback_alarm) != "ALARM":  # 2: the alarm's state is read first
                problems.append(f"rollback {state.rollback_id} requested while {state.rollback_alarm} was not in ALARM")
            cooldown_refusal = state.outcome == "refused" and state.reason.startswith("cooldown")
            if cooldown_refusal and state.last_action_at in failed_rollbacks:  # 6: failed frees the cooldown
                problems.append(f"refused for the cooldown of a failed rollback (requested {state.last_action_at})")
            if state.phase == "failed":
                failed_rollbacks.add(state.requested_at)
            if state.phase == "failed" and previous is not None and previous.phase == "requested":  # recovery tries
                rid = state.rollback_id
                tried = any(u.rollback_id == rid for u in self.world.sagemaker.accepted)
                tried = tried or rid in self.world.update_rejected or previous.attempts >= MAX_SWITCH_ATTEMPTS
                if not tried and c.endpoint[0] == "InService":
                    problems.append(f"rollback {rid} failed without trying {MAX_SWITCH_ATTEMPTS} times: {state.reason}")
            previous = state
        accepted = self.world.sagemaker.accepted  # 1: no two rollbacks in a cooldown
        for first, second in itertools.pairwise(accepted):
            if first.rollback_id == second.rollback_id:
                continue
            if (second.at - first.at).total_seconds() < COOLDOWN:
                failed = [
                    c
                    for c in commits
                    if first.at <= c.at <= second.at
                    and c.state.phase == "failed"
                    and c.state.rollback_id == first.rollback_id
                ]
                if not failed:
                    problems.append(f"two rollbacks {first} and {second} within the cooldown, the first not failed")
        final = self.world.breaker_state()  # 2: nothing left waiting once the world settled
        if final is not None and (final.pending or final.phase in IN_FLIGHT):
            problems.append(f"after settling: phase {final.phase}, pending {final.pending}")
        judged: dict[str | None, int] = {}  # 5: each ALARM transition is judged once (then only reconsidered)
        for d in self.decisions:
            switched = d.attempt == 1 and d.outcome in SWITCH_ANSWERS  # the first UpdateEndpoint of an alarm
            if (d.outcome in JUDGEMENTS or switched) and not d.reconsidered:
                judged[d.event_id] = judged.get(d.event_id, 0) + 1
        problems += [f"event {e} judged {n} times" for e, n in judged.items() if n > 1]
        recorded: dict[str, list[dict[str, Any]]] = {}
        for entry in self.world.evidence.entries:
            recorded.setdefault(entry.details.get("event_id"), []).append(entry.details)
        for alarm in ALARMS:
            value, since = self.world.cloudwatch.alarms[alarm]
            newest = [d for d in self.events if d.alarm == alarm and d.at == since]
            if value != "ALARM" or not newest:
                continue
            event_id = newest[-1].event["id"]
            if event_id in self.loud:
                continue
            if event_id not in recorded:
                problems.append(f"{alarm} still fires; its event {event_id} was never recorded nor failed loudly")
                continue
            last = recorded[event_id][-1]  # a wait must end: deferred and cooldown-refused alarms are judged again
            if last["outcome"] == "deferred" or last["explanation"].startswith("cooldown"):
                problems.append(f"{alarm} still fires and its event {event_id} was left at: {last['explanation']}")
        return problems


fault = st.one_of(st.none(), st.tuples(st.integers(0, 10), st.sampled_from(FAULT_KINDS)))
fire = st.tuples(st.just("fire"), st.sampled_from(ALARMS), st.booleans(), fault)
clear = st.tuples(st.just("clear"), st.sampled_from(ALARMS))
tick = st.tuples(st.just("tick"), fault)
advance = st.tuples(st.just("advance"), st.sampled_from((5, 60, 200, 600, 1900)))
settle = st.tuples(st.just("settle"), st.booleans())
redeployed = st.tuples(st.just("redeployed"))  # someone put the pinned model back: a second rollback can follow
action = st.one_of(  # repeated entries weigh the common moves; a broken endpoint is drawn per example
    fire,
    fire,
    fire,
    clear,
    clear,
    tick,
    tick,
    advance,
    advance,
    settle,
    redeployed,
    st.tuples(st.just("deliver"), st.integers(0, 50), fault),  # a late first delivery, or a redelivery
    st.tuples(st.just("deploy")),
)


def play(actions: list[tuple[Any, ...]], instant: bool = False, break_at: int | None = None) -> Run:
    run = Run()
    run.world.sagemaker.instant = instant
    for index, step in enumerate(actions):
        if index == break_at:
            run.world.sagemaker.break_down()
        run.clock.advance(1)  # time always moves: CloudWatch transitions of one alarm never share a timestamp
        kind = step[0]
        if kind == "fire":
            run.fire(step[1], step[2], step[3])
        elif kind == "clear":
            run.world.cloudwatch.set(step[1], "OK", run.clock())
        elif kind == "deliver":
            run.deliver(step[1], step[2])
        elif kind == "tick":
            run.tick(step[1])
        elif kind == "advance":
            run.clock.advance(step[1])
        elif kind == "deploy":
            run.world.sagemaker.deploy(PINNED)
        elif kind == "settle":
            run.world.sagemaker.settle(step[1])
        elif kind == "redeployed":
            run.world.sagemaker.redeployed(PINNED)
    run.settle()
    return run


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(action, min_size=12, max_size=40),
    st.booleans(),
    st.one_of(st.none(), st.none(), st.none(), st.integers(0, 40)),
)
def test_the_breaker_keeps_its_invariants_under_any_interleaving_and_fault(
    actions: list[tuple[Any, ...]], instant: bool, break_at: int | None
) -> None:
    run = play(actions, instant, break_at)
    for outcome in sorted({str(d.outcome) for d in run.decisions}):
        event(f"outcome {outcome}")  # --hypothesis-show-statistics: what the examples reached
    event(f"rollbacks accepted: {min(len(run.world.sagemaker.accepted), 3)}")
    event(f"faults fired: {min(run.faults_fired, 3)}")
    assert run.check() == []


def test_the_property_test_reaches_the_states_it_claims_to() -> None:
    """A fixed scenario through the same harness: it really switches, defers, recovers and fails."""
    a, b = ALARMS[0], ALARMS[1]
    run = play(
        [
            ("deploy",),
            ("fire", a, True, None),  # deferred: mid-deployment
            ("settle", True),
            ("tick", (4, "killed")),  # the reconsidered alarm is being acted on, then the invocation dies
            ("advance", 200),
            ("tick", None),  # recovered
            ("fire", b, True, None),  # in flight or cooldown: kept
            ("settle", False),  # the rollback fails back
            ("tick", None),
        ]
    )
    outcomes = {str(d.outcome) for d in run.decisions}
    assert {"deferred", "rolling-back", "failed"} <= outcomes, outcomes
    assert run.check() == []
    assert any(d.reconsidered for d in run.decisions)
    assert run.world.sagemaker.accepted and isinstance(run.decisions[0], Decision)
    assert Outcome.DEFERRED in {d.outcome for d in run.decisions}
