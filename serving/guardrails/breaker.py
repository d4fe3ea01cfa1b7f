"""Circuit breaker (Lambda, in the VPC). A drift, quality or rollback alarm in ALARM switches the model's endpoint
back to its recorded last-known-good endpoint configuration - when, and only when, that is safe:

- the alarm still fires: its current state is read (DescribeAlarms) before acting, so an ALARM event delivered
  after its own OK does nothing (recorded as `cleared`);
- not mid-deployment: while the endpoint deploys (Creating/Updating/RollingBack/SystemUpdating) nothing is
  switched; the alarm is kept *pending* in the state record, alerted, and re-judged by every invocation and by
  the schedule until the deployment ends (drift, score-drift and quality alarms are not SageMaker auto-rollback
  alarms: nobody else acts on them meanwhile);
- never to a missing or unverified configuration: the last-known-good name comes from SSM ("none" = refuse), the
  configuration must exist and carry a matching verification marker (`serving.guardrails.verified`);
- idempotent: an ALARM transition already decided (same alarm, same state-change time) does nothing, however late
  it is redelivered (`serving.guardrails.state`); an endpoint already on the last-known-good is a no-op;
- ordered: an alarm that changed state before the last rollback describes the old model and is ignored;
- no flapping: within the cooldown after a rollback nothing else is switched; the refused alarm is alerted, kept
  pending and re-judged when the cooldown ends (switched then if it still fires);
- one actor: decisions are committed to the SSM state record with compare-and-set, so of two concurrent
  invocations exactly one acts.

A rollback is a persisted state machine (see `serving.guardrails.state`): `requested` is committed before
UpdateEndpoint; `updating` once SageMaker accepted it; `landed` (outcome `rolled-back`) only when DescribeEndpoint
shows InService on the last-known-good configuration; `failed` (alerted, cooldown given back) when SageMaker
rejects it, the endpoint ends elsewhere or it does not land in time. A crash, timeout or connection error between
`requested` and SageMaker's answer is recovered by the next invocation or the schedule (EventBridge, every
5 minutes): the endpoint is read, and the call re-issued only when it evidently did not take (at most
MAX_SWITCH_ATTEMPTS times, never while the interrupted invocation could still be running).

The switch itself: UpdateEndpoint to the last-known-good configuration with an explicit all-at-once blue/green
policy, no bake (WaitIntervalInSeconds 0, TerminationWaitInSeconds 0) and *no* auto-rollback alarms, and without
retaining the endpoint's last deployment config. Retaining it would reuse the release's canary bake and its alarms -
one of which is in ALARM right now, so SageMaker would roll the rollback back. Variant properties (the instance
count autoscaling chose) are retained so the last-known-good fleet comes up at the current capacity.

Every decision except ignored and duplicate events is appended to the evidence log (kind `rollback`, actor = the
function's role, reason = alarm name and CloudWatch's reason); rollbacks, failures, refusals and deferrals notify
the SNS topic. Any failure (an AWS error, a lost evidence record or alert) is alerted and makes the invocation
fail, so the function's Errors alarm fires and EventBridge's retries end in the dead-letter queue.
Standard library + boto3 only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from clinops.names import (
    BREAKER_ALARM_SUFFIXES,
    NONE,
    ROLLBACK_ALARM_SUFFIXES,
    endpoint_name,
    last_known_good_parameter,
    model_for_alarm,
)
from serving.guardrails.events import AlarmEvent, is_reconcile_event, iso, parse_alarm_event, parse_time
from serving.guardrails.outputs import EvidenceSink, log_line, publish
from serving.guardrails.state import (
    FAILED,
    IN_FLIGHT,
    LANDED,
    REQUESTED,
    UPDATING,
    WAIT_COOLDOWN,
    WAIT_DEPLOYMENT,
    WAIT_IN_FLIGHT,
    BreakerState,
    PendingAlarm,
    SsmStateStore,
)
from serving.guardrails.verified import check_verified

IN_DEPLOYMENT = frozenset({"Creating", "Updating", "RollingBack", "SystemUpdating"})
MAX_COMMIT_ATTEMPTS = 5
MAX_SWITCH_ATTEMPTS = 3  # UpdateEndpoint calls per rollback (the first + two recoveries)
MAX_STEPS = 12  # transitions per model per invocation: a bound, never reached in practice (each pending alarm
# and each phase change is one step; at most 6 pending alarms + requested/updating/landed)
DEFAULT_COOLDOWN_SECONDS = 30 * 60
DEFAULT_ROLLBACK_TIMEOUT_SECONDS = 1800  # MaximumExecutionTimeoutInSeconds: 600..28800
FUNCTION_TIMEOUT_SECONDS = 120  # the Lambda's timeout (infra/guardrails.py)
# An UpdateEndpoint claim younger than this may belong to an invocation still running: recovery leaves it alone.
RECOVERY_DELAY_SECONDS = FUNCTION_TIMEOUT_SECONDS + 30
LANDING_GRACE_SECONDS = 600  # past SageMaker's own deployment timeout, a rollback still Updating is failed
# Transport failures: the request may or may not have reached SageMaker (ReadTimeoutError, EndpointConnectionError
# and ConnectTimeoutError are BotoCoreErrors; the rest are what a socket can raise underneath).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ConnectionError, TimeoutError)


class Outcome(StrEnum):
    IGNORED = "ignored"  # not an ALARM of one of our endpoints
    DUPLICATE = "duplicate"  # this ALARM transition was already decided
    STALE = "stale"  # the alarm changed state before the last rollback
    CLEARED = "cleared"  # the alarm is no longer in ALARM (or no longer exists)
    DEFERRED = "deferred"  # kept pending: mid-deployment, or a rollback in flight
    REFUSED = "refused"  # a human must decide (cooldown refusals are also kept pending)
    NOOP = "no-op"  # already on the last-known-good
    ROLLING_BACK = "rolling-back"  # UpdateEndpoint accepted; becomes rolled-back or failed
    INTERRUPTED = "interrupted"  # UpdateEndpoint's answer was lost; recovered by the next invocation/schedule
    ROLLED_BACK = "rolled-back"  # InService on the last-known-good configuration
    FAILED = "failed"
    ERROR = "error"  # an unexpected failure: alerted, and the invocation fails (DLQ)


RECORDED = frozenset(Outcome) - {Outcome.IGNORED, Outcome.DUPLICATE}
ALERTED = frozenset(
    {
        Outcome.DEFERRED,
        Outcome.REFUSED,
        Outcome.ROLLING_BACK,
        Outcome.INTERRUPTED,
        Outcome.ROLLED_BACK,
        Outcome.FAILED,
        Outcome.ERROR,
    }
)
RAISES = frozenset({Outcome.INTERRUPTED, Outcome.ERROR})  # the invocation fails after recording and alerting


@dataclass(frozen=True)
class BreakerSettings:
    stack: str
    models: tuple[str, ...]
    topic_arn: str
    actor: str  # the function's role ARN: the evidence actor
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS
    rollback_timeout_seconds: int = DEFAULT_ROLLBACK_TIMEOUT_SECONDS
    alarm_suffixes: tuple[str, ...] = (*ROLLBACK_ALARM_SUFFIXES, *BREAKER_ALARM_SUFFIXES)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BreakerSettings:
        return cls(
            stack=env["STACK"],
            models=tuple(m.strip() for m in env["MODELS"].split(",") if m.strip()),
            topic_arn=env["TOPIC_ARN"],
            actor=env["ACTOR_ARN"],
            cooldown_seconds=int(env.get("COOLDOWN_SECONDS", DEFAULT_COOLDOWN_SECONDS)),
            rollback_timeout_seconds=int(env.get("ROLLBACK_TIMEOUT_SECONDS", DEFAULT_ROLLBACK_TIMEOUT_SECONDS)),
        )


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    ssm: Any
    sns: Any
    evidence: EvidenceSink
    cloudwatch: Any


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    event_id: str | None = None
    alarm: str | None = None
    alarm_at: str | None = None
    alarm_reason: str | None = None  # CloudWatch's sentence: threshold, datapoints - no patient data
    model: str | None = None
    endpoint: str | None = None
    phase: str | None = None  # of the rollback, after this decision
    rollback_id: str | None = None
    from_config: str | None = None
    to_config: str | None = None
    package_arn: str | None = None  # the last-known-good package, once verified
    reconsidered: bool = False  # a pending alarm judged again (not a new event)
    attempt: int | None = None  # the UpdateEndpoint call this decision is about (1..MAX_SWITCH_ATTEMPTS)
    pending: tuple[str, ...] | None = None  # alarms left waiting, after this decision
    state_version: int | None = None
    evidence_seq: int | None = None
    evidence_error: str | None = None
    alert_error: str | None = None
    notified: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {k: (str(v) if isinstance(v, Outcome) else v) for k, v in asdict(self).items() if v is not None}
        if not self.reconsidered:
            out.pop("reconsidered")
        if "pending" in out:
            out["pending"] = list(self.pending or ())
        return out

    @property
    def must_fail(self) -> bool:
        """The invocation must end in an error (Errors alarm, retries, DLQ): something was not done or not told."""
        return self.outcome in RAISES or bool(self.evidence_error or self.alert_error)


def rollback_request(endpoint: str, config: str, timeout_seconds: int) -> dict[str, Any]:
    """The UpdateEndpoint request of a rollback (see the module doc for why each flag is what it is)."""
    return {
        "EndpointName": endpoint,
        "EndpointConfigName": config,
        "RetainAllVariantProperties": True,
        "RetainDeploymentConfig": False,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": timeout_seconds,
            }
        },
    }


# ---------------------------------------------------------------------------------------------------- entry points


def handle_event(
    event: Mapping[str, Any],
    clients: Clients,
    state_store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> list[Decision]:
    """One invocation: an alarm state change, or the schedule's reconcile event (every model). Each model touched
    first has its rollback moved on and its pending alarms re-judged; then the alarm itself is judged. A failure in
    one model is recorded and alerted as an `error` decision and does not stop the others."""
    if is_reconcile_event(event):
        alarm, models = None, settings.models
    else:
        screened = _screen(event, settings)
        if isinstance(screened, Decision):
            return [_conclude(screened, clients, settings)]
        alarm, model = screened
        models = (model,)
    decisions: list[Decision] = []
    for model in models:
        try:
            decisions += advance(model, clients, state_store, clock, settings)
            if alarm is not None:
                decisions += _judge_new_alarm(alarm, model, clients, state_store, clock, settings)
        except Exception as exc:  # AWS errors of any kind, a broken record: alert, record, fail the invocation
            decisions.append(_error_decision(exc, model, alarm, clients, settings))
    return decisions


def handle_alarm_event(
    event: Mapping[str, Any],
    clients: Clients,
    state_store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> Decision:
    """`handle_event` for one alarm event; the decision about that alarm (the last one taken)."""
    return handle_event(event, clients, state_store, clock, settings)[-1]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    from serving.guardrails.outputs import LazyEvidence, s3_evidence_from_env

    settings = BreakerSettings.from_env(os.environ)
    ssm = boto3.client("ssm")
    # Opened on first use: a missing evidence setting or layer must not stop the switch, only be reported after it.
    evidence = LazyEvidence(lambda: s3_evidence_from_env(settings.stack))
    clients = Clients(boto3.client("sagemaker"), ssm, boto3.client("sns"), evidence, boto3.client("cloudwatch"))
    decisions = handle_event(event, clients, SsmStateStore(ssm), lambda: datetime.now(UTC), settings)
    failing = [d for d in decisions if d.must_fail]
    if failing:
        # Raise after acting and alerting, so the function's Errors alarm fires and EventBridge retries, then
        # dead-letters, the event. A retry re-runs the recovery; an already decided alarm is a duplicate.
        first = failing[0]
        detail = first.evidence_error or first.alert_error or first.reason
        raise RuntimeError(f"circuit breaker {first.outcome}: {detail}"[:1000])
    return {"decisions": [d.as_dict() for d in decisions]}


# ------------------------------------------------------------------------------------------------------- judgement


def _screen(event: Mapping[str, Any], settings: BreakerSettings) -> Decision | tuple[AlarmEvent, str]:
    alarm = parse_alarm_event(event)
    if alarm is None:
        return Decision(Outcome.IGNORED, "not a CloudWatch alarm state change nor the breaker's reconcile event")
    if alarm.state != "ALARM":
        return _ignored(alarm, f"alarm state is {alarm.state}, not ALARM")
    model = model_for_alarm(settings.stack, settings.models, alarm.alarm, settings.alarm_suffixes)
    if model is None:
        return _ignored(alarm, f"alarm {alarm.alarm} belongs to no endpoint of stack {settings.stack}")
    return alarm, model


def _ignored(alarm: AlarmEvent, reason: str) -> Decision:
    return Decision(Outcome.IGNORED, reason, event_id=alarm.event_id, alarm=alarm.alarm, alarm_at=iso(alarm.changed_at))


@dataclass(frozen=True)
class _Step:
    """A decision and the state record it leads to; `switch` = call UpdateEndpoint once it is committed."""

    decision: Decision
    state: BreakerState
    switch: bool = False


def _judge_new_alarm(
    alarm: AlarmEvent,
    model: str,
    clients: Clients,
    store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> list[Decision]:
    for _ in range(MAX_COMMIT_ATTEMPTS):
        snapshot = store.read(settings.stack, model)
        state = snapshot.state or _empty_state()
        step = _judge(alarm, model, state, None, clients, clock, settings)
        if step.decision.outcome is Outcome.DUPLICATE:
            return [_conclude(step.decision, clients, settings)]
        if store.commit(settings.stack, model, snapshot, step.state):
            break
    else:  # practically unreachable: five other decisions for this model landed while this one was deciding
        why = f"{MAX_COMMIT_ATTEMPTS} concurrent decisions for this model; nothing switched - check the endpoint"
        return [_conclude(replace(step.decision, outcome=Outcome.REFUSED, reason=why), clients, settings)]
    decision = replace(step.decision, state_version=snapshot.version + 1)
    if not step.switch:
        return [_conclude(decision, clients, settings)]
    decisions = _switch(decision, clients, store, clock, settings)
    if decisions[-1].outcome is Outcome.ROLLING_BACK:  # read the endpoint once: it may already be there
        decisions += advance(model, clients, store, clock, settings)
    return decisions


def _judge(
    alarm: AlarmEvent,
    model: str,
    state: BreakerState,
    pending: PendingAlarm | None,
    clients: Clients,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> _Step:
    """Every check, in order; the first that fails decides. Reads AWS, writes nothing. `pending` is set when a
    pending alarm is judged again (its event was already seen)."""
    stack = settings.stack
    endpoint = endpoint_name(stack, model)
    now = clock()
    base = Decision(
        Outcome.REFUSED,
        "",
        event_id=alarm.event_id,
        alarm=alarm.alarm,
        alarm_at=iso(alarm.changed_at),
        alarm_reason=alarm.reason or "entered ALARM",
        model=model,
        endpoint=endpoint,
        reconsidered=pending is not None,
    )

    def done(decision: Decision, waits_for: str | None = None, not_before: datetime | None = None) -> _Step:
        keep = tuple(p for p in state.pending if p.alarm != alarm.alarm)
        if waits_for is not None:
            keep += (PendingAlarm(alarm.alarm, alarm.event_id, iso(alarm.changed_at), waits_for, _iso(not_before)),)
        newest = max(filter(None, (parse_time(state.seen.get(alarm.alarm)), alarm.changed_at)))
        seen = {**state.seen, alarm.alarm: iso(newest)}
        decision = replace(decision, pending=tuple(p.alarm for p in keep), phase=state.phase)
        return _Step(decision, _with(state, decision, now, pending=keep, seen=seen))

    if pending is None and state.remembers(alarm.alarm, iso(alarm.changed_at)):
        return _Step(
            replace(base, outcome=Outcome.DUPLICATE, reason="this ALARM transition was already decided"), state
        )
    last_action = parse_time(state.last_action_at)
    if last_action is not None and alarm.changed_at <= last_action:
        return done(
            replace(
                base,
                outcome=Outcome.STALE,
                reason=f"alarm changed state at {iso(alarm.changed_at)}, before the last rollback at "
                f"{iso(last_action)} (event {state.last_action_event_id}): it describes the model rolled back from",
            )
        )
    current = _alarm_now(clients.cloudwatch, alarm.alarm)
    if current is None:
        return done(replace(base, outcome=Outcome.CLEARED, reason=f"alarm {alarm.alarm} no longer exists"))
    value, current_reason, since = current
    if pending is not None and current_reason:
        base = replace(base, alarm_reason=current_reason[:500])
    if value != "ALARM":
        return done(
            replace(
                base,
                outcome=Outcome.CLEARED,
                reason=f"alarm is {value} now (since {since}): an ALARM that no longer fires is not acted on",
            )
        )
    if state.phase in IN_FLIGHT:
        return done(
            replace(
                base,
                outcome=Outcome.DEFERRED,
                reason=f"a rollback to {state.to_config} (event {state.rollback_id}) is {state.phase}: this alarm "
                "is kept pending and judged again when it lands or fails",
            ),
            WAIT_IN_FLIGHT,
        )
    described = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    status, serving = described["EndpointStatus"], described.get("EndpointConfigName")
    base = replace(base, from_config=serving)
    if status in IN_DEPLOYMENT:
        owner = (
            "it is a rollback alarm: SageMaker's auto-rollback acts on it if the running deployment lists it"
            if alarm.alarm.removeprefix(endpoint + "-") in ROLLBACK_ALARM_SUFFIXES
            else "it is not a SageMaker auto-rollback alarm: nothing else acts on it meanwhile"
        )
        return done(
            replace(
                base,
                outcome=Outcome.DEFERRED,
                reason=f"endpoint is {status}: the breaker does not switch an endpoint mid-deployment; {owner}. "
                "The alarm is kept pending and judged again (current state read) by every invocation and the "
                "schedule until the deployment ends",
            ),
            WAIT_DEPLOYMENT,
        )
    if status != "InService":
        return done(replace(base, reason=f"endpoint is {status}, not InService: a human must decide"))

    lkg_parameter = last_known_good_parameter(stack, model)
    try:
        lkg = clients.ssm.get_parameter(Name=lkg_parameter)["Parameter"]["Value"].strip()
    except ClientError as exc:
        if _code(exc) != "ParameterNotFound":
            raise
        lkg = ""
    if lkg.lower() == NONE or not lkg:
        return done(replace(base, reason=f"no last-known-good configuration is recorded ({lkg_parameter} = none)"))
    base = replace(base, to_config=lkg)
    if serving == lkg:
        return done(replace(base, outcome=Outcome.NOOP, reason=f"endpoint already serves the last-known-good {lkg}"))
    try:
        config = clients.sagemaker.describe_endpoint_config(EndpointConfigName=lkg)
    except ClientError as exc:
        if not (_code(exc) == "ValidationException" and "Could not find" in _error(exc)):
            raise
        return done(replace(base, reason=f"last-known-good configuration {lkg} does not exist in SageMaker"))
    marker, why_not = check_verified(clients.ssm, stack, model, lkg, config["CreationTime"])
    if marker is None:
        return done(replace(base, reason=f"last-known-good configuration {lkg} is not verified: {why_not}"))
    base = replace(base, package_arn=marker.package_arn)
    if last_action is not None and now - last_action < timedelta(seconds=settings.cooldown_seconds):
        until = last_action + timedelta(seconds=settings.cooldown_seconds)
        return done(
            replace(
                base,
                reason=f"cooldown: the last rollback was at {iso(last_action)}; no automatic switch before "
                f"{iso(until)} (anti-flapping). The alarm is kept pending: if it still fires then, it is acted on",
            ),
            WAIT_COOLDOWN,
            until,
        )
    step = done(replace(base, outcome=Outcome.ROLLING_BACK, reason=f"switching {serving} -> verified {lkg}"))
    decision = replace(step.decision, phase=REQUESTED, rollback_id=alarm.event_id, attempt=1)
    requested = replace(
        step.state,
        phase=REQUESTED,
        rollback_id=alarm.event_id,
        rollback_alarm=alarm.alarm,
        requested_at=iso(now),
        attempt_at=iso(now),
        attempts=1,
        from_config=serving,
        to_config=lkg,
        to_package_arn=marker.package_arn,
        last_action_at=iso(now),
        last_action_event_id=alarm.event_id,
        prior_action_at=state.last_action_at,
        prior_action_event_id=state.last_action_event_id,
    )
    return _Step(decision, requested, switch=True)


# ------------------------------------------------------------------------------------------ the rollback, in flight


def advance(
    model: str,
    clients: Clients,
    store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> list[Decision]:
    """Move the model's rollback on (recover `requested`, confirm or fail `updating`) and re-judge pending alarms
    that are due. Safe to run at any time and concurrently: every transition is a compare-and-set."""
    decisions: list[Decision] = []
    for _ in range(MAX_STEPS):
        snapshot = store.read(settings.stack, model)
        state = snapshot.state
        if state is None:
            break
        if state.phase in IN_FLIGHT:
            step = _progress(model, state, clients, clock, settings)
        else:
            step = _reconsider(model, state, clients, clock, settings)
        if step is None:
            break
        if not store.commit(settings.stack, model, snapshot, step.state):
            continue  # another invocation moved first: look again
        decision = replace(step.decision, state_version=snapshot.version + 1)
        if step.switch:
            decisions += _switch(decision, clients, store, clock, settings)
            if decisions[-1].outcome in (Outcome.INTERRUPTED, Outcome.FAILED):
                break  # SageMaker unreachable or refusing: no second call in this invocation
        else:
            decisions.append(_conclude(decision, clients, settings))
            if decision.phase == UPDATING:
                break  # seen deploying just now: the next invocation or the schedule looks again
    return decisions


def _progress(
    model: str, state: BreakerState, clients: Clients, clock: Callable[[], datetime], settings: BreakerSettings
) -> _Step | None:
    """The next transition of a rollback in flight, from what DescribeEndpoint shows; None = nothing to do yet."""
    endpoint = endpoint_name(settings.stack, model)
    now = clock()
    described = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    status, serving = described["EndpointStatus"], described.get("EndpointConfigName")
    base = Decision(
        Outcome.FAILED,
        "",
        event_id=state.rollback_id,
        alarm=state.rollback_alarm,
        model=model,
        endpoint=endpoint,
        rollback_id=state.rollback_id,
        from_config=state.from_config,
        to_config=state.to_config,
        package_arn=state.to_package_arn,
        pending=tuple(p.alarm for p in state.pending),
    )
    if status == "InService" and serving == state.to_config:
        landed = replace(
            base,
            outcome=Outcome.ROLLED_BACK,
            phase=LANDED,
            reason=f"endpoint is InService on the verified last-known-good {state.to_config} "
            f"(switched from {state.from_config})",
        )
        return _Step(landed, _with(state, landed, now, phase=LANDED))
    claimed = parse_time(state.attempt_at) or now
    if state.phase == REQUESTED:
        if status in IN_DEPLOYMENT:
            accepted = replace(
                base,
                outcome=Outcome.ROLLING_BACK,
                phase=UPDATING,
                reason=f"endpoint is {status}: the interrupted UpdateEndpoint to {state.to_config} had been accepted",
            )
            return _Step(accepted, _with(state, accepted, now, phase=UPDATING))
        if now - claimed < timedelta(seconds=RECOVERY_DELAY_SECONDS):
            return None  # the invocation that claimed the call may still be running
        if status == "InService" and state.attempts < MAX_SWITCH_ATTEMPTS:
            retry = replace(
                base,
                outcome=Outcome.ROLLING_BACK,
                phase=REQUESTED,
                attempt=state.attempts + 1,
                reason=f"recovering an interrupted rollback: endpoint still serves {serving}; "
                f"UpdateEndpoint attempt {state.attempts + 1} of {MAX_SWITCH_ATTEMPTS}",
            )
            return _Step(retry, _with(state, retry, now, attempts=state.attempts + 1, attempt_at=iso(now)), switch=True)
        why = (
            f"gave up after {state.attempts} UpdateEndpoint attempts; endpoint serves {serving}"
            if status == "InService"
            else f"endpoint is {status}"
        )
        return _failed(state, base, now, f"the rollback to {state.to_config} was not made: {why}")
    # UPDATING
    if status in IN_DEPLOYMENT:
        deadline = claimed + timedelta(seconds=settings.rollback_timeout_seconds + LANDING_GRACE_SECONDS)
        if now < deadline:
            return None
        return _failed(state, base, now, f"the rollback to {state.to_config} did not land by {iso(deadline)}")
    where = f"serves {serving}" if status == "InService" else f"is {status}"
    return _failed(state, base, now, f"the rollback to {state.to_config} did not land: endpoint {where}")


def _failed(state: BreakerState, base: Decision, now: datetime, reason: str) -> _Step:
    """A rollback that did not land: alerted, and the cooldown it claimed is given back."""
    failed = replace(base, outcome=Outcome.FAILED, phase=FAILED, reason=reason + "; a human must decide")
    return _Step(
        failed,
        _with(
            state,
            failed,
            now,
            phase=FAILED,
            last_action_at=state.prior_action_at,
            last_action_event_id=state.prior_action_event_id,
            prior_action_at=None,
            prior_action_event_id=None,
        ),
    )


def _reconsider(
    model: str, state: BreakerState, clients: Clients, clock: Callable[[], datetime], settings: BreakerSettings
) -> _Step | None:
    """Judge the due pending alarms again; the first whose verdict changed is the next step."""
    now = clock()
    for pending in state.pending:
        not_before = parse_time(pending.not_before)
        if not_before is not None and now < not_before:
            continue
        changed_at = parse_time(pending.alarm_at) or now
        alarm = AlarmEvent(pending.event_id, pending.alarm, "ALARM", None, "", changed_at)
        step = _judge(alarm, model, state, pending, clients, clock, settings)
        if step.state.pending_for(pending.alarm) == pending:
            continue  # still waiting for the same thing: nothing new to record or alert
        return step
    return None


def _switch(
    decision: Decision,
    clients: Clients,
    store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> list[Decision]:
    """UpdateEndpoint for a committed `requested` record, and the record of its answer."""
    assert decision.endpoint and decision.to_config and decision.model
    request = rollback_request(decision.endpoint, decision.to_config, settings.rollback_timeout_seconds)
    try:
        clients.sagemaker.update_endpoint(**request)
    except ClientError as exc:  # SageMaker answered no: nothing is deploying
        rejected = replace(
            decision, outcome=Outcome.FAILED, phase=FAILED, reason=f"UpdateEndpoint failed: {_error(exc)}"
        )
        return [_record_answer(rejected, clients, store, clock, settings)]
    except TRANSPORT_ERRORS as exc:  # unknown whether SageMaker got it: the record stays `requested`
        lost = replace(
            decision,
            outcome=Outcome.INTERRUPTED,
            phase=REQUESTED,
            reason=f"UpdateEndpoint to {decision.to_config} got no answer ({type(exc).__name__}: {exc}); the "
            f"rollback stays requested and is recovered by the next invocation or the schedule",
        )
        return [_conclude(lost, clients, settings)]
    accepted = replace(
        decision,
        outcome=Outcome.ROLLING_BACK,
        phase=UPDATING,
        reason=f"UpdateEndpoint accepted (attempt {decision.attempt or 1} of {MAX_SWITCH_ATTEMPTS}): switching "
        f"{decision.from_config} -> verified last-known-good {decision.to_config} (all at once); rolled-back is "
        "recorded once it is InService there",
    )
    return [_record_answer(accepted, clients, store, clock, settings)]


def _record_answer(
    decision: Decision,
    clients: Clients,
    store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> Decision:
    """Move the `requested` record of this rollback to `updating` or `failed`; if another invocation already moved
    it on, its record stands."""
    assert decision.model
    for _ in range(MAX_COMMIT_ATTEMPTS):
        snapshot = store.read(settings.stack, decision.model)
        state = snapshot.state
        if state is None or state.rollback_id != decision.rollback_id or state.phase != REQUESTED:
            break
        now = clock()
        if decision.outcome is Outcome.FAILED:
            step = _failed(state, decision, now, decision.reason)
        else:
            step = _Step(decision, _with(state, decision, now, phase=UPDATING))
        if store.commit(settings.stack, decision.model, snapshot, step.state):
            decision = replace(step.decision, state_version=snapshot.version + 1)
            break
    return _conclude(decision, clients, settings)


# ---------------------------------------------------------------------------------------------- outputs, helpers


def _conclude(decision: Decision, clients: Clients, settings: BreakerSettings) -> Decision:
    """Evidence first (so the alert can cite it), then the alert, then the log line."""
    if decision.outcome in RECORDED and decision.model:
        try:
            entry = clients.evidence.append(
                "rollback",
                model=decision.model,
                actor=settings.actor,
                reason=f"{decision.alarm}: {decision.alarm_reason or decision.reason}"[:2000],
                package_arn=decision.package_arn if decision.outcome is Outcome.ROLLED_BACK else None,
                details={
                    "outcome": str(decision.outcome),
                    "explanation": decision.reason,
                    "phase": decision.phase,
                    "rollback_id": decision.rollback_id,
                    "reconsidered": decision.reconsidered,
                    "pending": list(decision.pending or ()),
                    "endpoint": decision.endpoint,
                    "alarm": decision.alarm,
                    "alarm_state_changed_at": decision.alarm_at,
                    "event_id": decision.event_id,
                    "from_config": decision.from_config,
                    "to_config": decision.to_config,
                    "lkg_package_arn": decision.package_arn,
                    "cooldown_seconds": settings.cooldown_seconds,
                    "state_version": decision.state_version,
                },
            )
            decision = replace(decision, evidence_seq=getattr(entry, "seq", None))
        except Exception as exc:  # the switch is done; a lost record must be loud, not fatal
            decision = replace(decision, evidence_error=f"{type(exc).__name__}: {exc}"[:500])
    if decision.outcome in ALERTED or decision.evidence_error:
        fields = {"stack": settings.stack, **decision.as_dict()}
        subject = f"[clinops {settings.stack}] circuit breaker {decision.outcome}: {decision.model}"
        error = publish(clients.sns, settings.topic_arn, subject, fields)
        decision = replace(decision, notified=error is None, alert_error=error)
    log_line("circuit-breaker", {"stack": settings.stack, **decision.as_dict()})
    return decision


def _error_decision(
    exc: Exception, model: str, alarm: AlarmEvent | None, clients: Clients, settings: BreakerSettings
) -> Decision:
    text = _error(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
    decision = Decision(
        Outcome.ERROR,
        f"the breaker could not finish ({text[:500]}); state is unchanged past the last recorded step - the "
        "event is retried and then dead-lettered, and the schedule recovers any rollback in flight",
        event_id=alarm.event_id if alarm else None,
        alarm=alarm.alarm if alarm else None,
        alarm_at=iso(alarm.changed_at) if alarm else None,
        model=model,
        endpoint=endpoint_name(settings.stack, model),
    )
    return _conclude(decision, clients, settings)


def _alarm_now(cloudwatch: Any, name: str) -> tuple[str, str, str] | None:
    """(state, reason, since) of the alarm as CloudWatch shows it now; None when it does not exist."""
    answer = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    found = [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]
    if not found:
        return None
    alarm = found[0]
    since = alarm.get("StateUpdatedTimestamp")
    return str(alarm["StateValue"]), str(alarm.get("StateReason") or ""), iso(since) if since else "?"


def _with(state: BreakerState, decision: Decision, now: datetime, **changes: Any) -> BreakerState:
    """The record after `decision`: the newest-decision fields replaced, everything else carried forward."""
    return replace(
        state,
        outcome=str(decision.outcome),
        last_event_id=decision.event_id or "",
        alarm=decision.alarm or "",
        alarm_at=decision.alarm_at,
        decided_at=iso(now),
        reason=decision.reason,
        **changes,
    )


def _empty_state() -> BreakerState:
    return BreakerState(outcome="", last_event_id="", alarm="", alarm_at=None, decided_at="", reason="")


def _iso(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
