"""Circuit breaker (Lambda, in the VPC). A drift, quality or rollback alarm entering ALARM switches the model's
endpoint back to its recorded last-known-good endpoint configuration - when, and only when, that is safe:

- not mid-deployment: while SageMaker deploys (Creating/Updating/RollingBack/SystemUpdating) its own blue/green
  guardrails watch the rollback alarms and own the endpoint; the breaker records why it stood aside;
- never to a missing or unverified configuration: the last-known-good name comes from SSM ("none" = refuse), the
  configuration must exist and carry a matching verification marker (`serving.guardrails.verified`);
- idempotent: a duplicate event (same id) does nothing; an endpoint already on the last-known-good is a no-op;
- ordered: an alarm that changed state before the last rollback describes the old model and is ignored;
- no flapping: within the cooldown after a rollback, nothing else is switched (the humans are alerted instead);
- one actor: decisions are committed to the SSM state record with compare-and-set (`serving.guardrails.state`), so
  of two concurrent invocations exactly one acts.

The switch itself: UpdateEndpoint to the last-known-good configuration with an explicit all-at-once blue/green
policy, no bake (WaitIntervalInSeconds 0, TerminationWaitInSeconds 0) and *no* auto-rollback alarms, and without
retaining the endpoint's last deployment config. Retaining it would reuse the release's canary bake and its alarms -
one of which is in ALARM right now, so SageMaker would roll the rollback back. Variant properties (the instance
count autoscaling chose) are retained so the last-known-good fleet comes up at the current capacity.

Every decision except ignored and duplicate events is appended to the evidence log (kind `rollback`, actor = the
function's role, reason = alarm name and CloudWatch's reason); rollbacks, failures and refusals notify the SNS topic.
Standard library + boto3 only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from clinops.names import (
    BREAKER_ALARM_SUFFIXES,
    NONE,
    ROLLBACK_ALARM_SUFFIXES,
    endpoint_name,
    last_known_good_parameter,
    model_for_alarm,
)
from serving.guardrails.events import AlarmEvent, iso, parse_alarm_event, parse_time
from serving.guardrails.outputs import EvidenceSink, log_line, publish
from serving.guardrails.state import MAX_RECENT_EVENTS, BreakerState, Snapshot, SsmStateStore
from serving.guardrails.verified import check_verified

IN_DEPLOYMENT = frozenset({"Creating", "Updating", "RollingBack", "SystemUpdating"})
MAX_COMMIT_ATTEMPTS = 5
DEFAULT_COOLDOWN_SECONDS = 30 * 60
DEFAULT_ROLLBACK_TIMEOUT_SECONDS = 1800  # MaximumExecutionTimeoutInSeconds: 600..28800


class Outcome(StrEnum):
    IGNORED = "ignored"  # not an ALARM of one of our endpoints
    DUPLICATE = "duplicate"  # this event id was already decided
    STALE = "stale"  # the alarm changed state before the last rollback
    DEFERRED = "deferred-mid-deployment"
    REFUSED = "refused"
    NOOP = "no-op"  # already on the last-known-good
    ROLLING_BACK = "rolling-back"  # committed intent; becomes rolled-back or failed
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


RECORDED = frozenset(Outcome) - {Outcome.IGNORED, Outcome.DUPLICATE}
ALERTED = frozenset({Outcome.ROLLED_BACK, Outcome.FAILED, Outcome.REFUSED})


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
    from_config: str | None = None
    to_config: str | None = None
    package_arn: str | None = None  # the last-known-good package, once verified
    state_version: int | None = None
    evidence_seq: int | None = None
    evidence_error: str | None = None
    alert_error: str | None = None
    notified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Outcome) else v) for k, v in asdict(self).items() if v is not None}


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


def handle_alarm_event(
    event: Mapping[str, Any],
    clients: Clients,
    state_store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> Decision:
    alarm = parse_alarm_event(event)
    if alarm is None:
        return _conclude(Decision(Outcome.IGNORED, "not a CloudWatch alarm state change"), clients, settings)
    seen = {"event_id": alarm.event_id, "alarm": alarm.alarm, "alarm_at": iso(alarm.changed_at)}
    if alarm.state != "ALARM":
        return _conclude(
            Decision(Outcome.IGNORED, f"alarm state is {alarm.state}, not ALARM", **seen), clients, settings
        )
    model = model_for_alarm(settings.stack, settings.models, alarm.alarm, settings.alarm_suffixes)
    if model is None:
        why = f"alarm {alarm.alarm} belongs to no endpoint of stack {settings.stack}"
        return _conclude(Decision(Outcome.IGNORED, why, **seen), clients, settings)

    for _ in range(MAX_COMMIT_ATTEMPTS):
        snapshot = state_store.read(settings.stack, model)
        decision = _judge(alarm, model, snapshot, clients, clock, settings)
        if decision.outcome is Outcome.DUPLICATE:
            return _conclude(decision, clients, settings)
        if state_store.commit(settings.stack, model, snapshot, _record(decision, snapshot.state, clock)):
            decision = replace(decision, state_version=snapshot.version + 1)
            break
    else:  # practically unreachable: five other decisions for this model landed while this one was deciding
        why = f"{MAX_COMMIT_ATTEMPTS} concurrent decisions for this model; nothing switched - check the endpoint"
        return _conclude(replace(decision, outcome=Outcome.REFUSED, reason=why), clients, settings)

    if decision.outcome is Outcome.ROLLING_BACK:
        decision = _switch(decision, clients, settings)
        _record_outcome(decision, snapshot.state, state_store, clock, settings)
    return _conclude(decision, clients, settings)


def _judge(
    alarm: AlarmEvent,
    model: str,
    snapshot: Snapshot,
    clients: Clients,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> Decision:
    """Every check, in order; the first that fails decides. Reads AWS, writes nothing."""
    stack, state = settings.stack, snapshot.state
    endpoint = endpoint_name(stack, model)
    base = Decision(
        Outcome.REFUSED,
        "",
        event_id=alarm.event_id,
        alarm=alarm.alarm,
        alarm_at=iso(alarm.changed_at),
        alarm_reason=alarm.reason or "entered ALARM",
        model=model,
        endpoint=endpoint,
    )
    if state is not None and state.remembers(alarm.event_id):
        return replace(base, outcome=Outcome.DUPLICATE, reason=f"event already decided ({state.outcome})")
    last_action = parse_time(state.last_action_at) if state else None
    if last_action is not None and alarm.changed_at <= last_action:
        return replace(
            base,
            outcome=Outcome.STALE,
            reason=f"alarm changed state at {iso(alarm.changed_at)}, before the last rollback at "
            f"{iso(last_action)} (event {state.last_action_event_id}): it describes the model rolled back from",
        )
    try:
        described = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        return replace(base, reason=f"cannot read endpoint {endpoint}: {_error(exc)}")
    status, serving = described["EndpointStatus"], described.get("EndpointConfigName")
    base = replace(base, from_config=serving)
    if status in IN_DEPLOYMENT:
        return replace(
            base,
            outcome=Outcome.DEFERRED,
            reason=f"endpoint is {status}: SageMaker's deployment guardrails (auto-rollback alarms) own it until "
            "the deployment ends",
        )
    if status != "InService":
        return replace(base, reason=f"endpoint is {status}, not InService: a human must decide")

    lkg_parameter = last_known_good_parameter(stack, model)
    try:
        lkg = clients.ssm.get_parameter(Name=lkg_parameter)["Parameter"]["Value"].strip()
    except ClientError as exc:
        return replace(base, reason=f"cannot read {lkg_parameter}: {_error(exc)}")
    if lkg.lower() == NONE or not lkg:
        return replace(base, reason=f"no last-known-good configuration is recorded ({lkg_parameter} = none)")
    base = replace(base, to_config=lkg)
    if serving == lkg:
        return replace(base, outcome=Outcome.NOOP, reason=f"endpoint already serves the last-known-good {lkg}")
    try:
        config = clients.sagemaker.describe_endpoint_config(EndpointConfigName=lkg)
    except ClientError as exc:
        missing = _error(exc).startswith("ValidationException") and "Could not find" in _error(exc)
        why = "does not exist in SageMaker" if missing else f"cannot be read ({_error(exc)})"
        return replace(base, reason=f"last-known-good configuration {lkg} {why}")
    try:
        marker, why_not = check_verified(clients.ssm, stack, model, lkg, config["CreationTime"])
    except ClientError as exc:
        marker, why_not = None, f"its marker cannot be read ({_error(exc)})"
    if marker is None:
        return replace(base, reason=f"last-known-good configuration {lkg} is not verified: {why_not}")
    base = replace(base, package_arn=marker.package_arn)
    now = clock()
    if last_action is not None and now - last_action < timedelta(seconds=settings.cooldown_seconds):
        until = last_action + timedelta(seconds=settings.cooldown_seconds)
        return replace(
            base,
            reason=f"cooldown: the last rollback was at {iso(last_action)}; no automatic switch before "
            f"{iso(until)} (anti-flapping) - a human must decide",
        )
    return replace(base, outcome=Outcome.ROLLING_BACK, reason=f"switching {serving} -> verified {lkg}")


def _record(decision: Decision, previous: BreakerState | None, clock: Callable[[], datetime]) -> BreakerState:
    """The state record of a decision: complete, carrying the last rollback and the recent event ids forward."""
    recent = (decision.event_id or "", *(previous.recent_event_ids if previous else ()))[:MAX_RECENT_EVENTS]
    acting = decision.outcome is Outcome.ROLLING_BACK
    now = iso(clock())
    return BreakerState(
        outcome=str(decision.outcome),
        last_event_id=decision.event_id or "",
        alarm=decision.alarm or "",
        alarm_at=decision.alarm_at,
        decided_at=now,
        reason=decision.reason,
        last_action_at=now if acting else (previous.last_action_at if previous else None),
        last_action_event_id=decision.event_id if acting else (previous.last_action_event_id if previous else None),
        from_config=decision.from_config if acting else (previous.from_config if previous else None),
        to_config=decision.to_config if acting else (previous.to_config if previous else None),
        recent_event_ids=recent,
    )


def _switch(decision: Decision, clients: Clients, settings: BreakerSettings) -> Decision:
    assert decision.endpoint and decision.to_config
    request = rollback_request(decision.endpoint, decision.to_config, settings.rollback_timeout_seconds)
    try:
        clients.sagemaker.update_endpoint(**request)
    except ClientError as exc:
        return replace(decision, outcome=Outcome.FAILED, reason=f"UpdateEndpoint failed: {_error(exc)}")
    return replace(
        decision,
        outcome=Outcome.ROLLED_BACK,
        reason=f"switched {decision.from_config} -> verified last-known-good {decision.to_config} (all at once)",
    )


def _record_outcome(
    decision: Decision,
    before: BreakerState | None,
    state_store: SsmStateStore,
    clock: Callable[[], datetime],
    settings: BreakerSettings,
) -> None:
    """Replace the intent record by the outcome. A failed switch gives back the cooldown it claimed, so the next
    alarm may try again; if other decisions landed on top meanwhile, they are kept (only outcome fields change)."""
    assert decision.model
    for _ in range(MAX_COMMIT_ATTEMPTS):
        snapshot = state_store.read(settings.stack, decision.model)
        current = snapshot.state
        if current is None:
            return
        update: dict[str, Any] = {}
        if current.last_event_id == decision.event_id:  # else a later decision is newest: keep it as it is
            update = {"outcome": str(decision.outcome), "reason": decision.reason, "decided_at": iso(clock())}
        if decision.outcome is Outcome.FAILED and current.last_action_event_id == decision.event_id:
            update |= {
                "last_action_at": before.last_action_at if before else None,
                "last_action_event_id": before.last_action_event_id if before else None,
                "from_config": before.from_config if before else None,
                "to_config": before.to_config if before else None,
            }
        if not update:
            return
        if state_store.commit(settings.stack, decision.model, snapshot, replace(current, **update)):
            return
    log_line("circuit-breaker-state-not-updated", {"event_id": decision.event_id, "outcome": str(decision.outcome)})


def _conclude(decision: Decision, clients: Clients, settings: BreakerSettings) -> Decision:
    """Evidence first (so the alert can cite it), then the alert, then the log line."""
    if decision.outcome in RECORDED and decision.model:
        try:
            entry = clients.evidence.append(
                "rollback",
                model=decision.model,
                actor=settings.actor,
                reason=f"{decision.alarm}: {decision.alarm_reason or 'entered ALARM'}"[:2000],
                package_arn=decision.package_arn if decision.outcome is Outcome.ROLLED_BACK else None,
                details={
                    "outcome": str(decision.outcome),
                    "explanation": decision.reason,
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


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    from serving.guardrails.outputs import LazyEvidence, s3_evidence_from_env

    settings = BreakerSettings.from_env(os.environ)
    ssm = boto3.client("ssm")
    # Opened on first use: a missing evidence setting or layer must not stop the switch, only be reported after it.
    evidence = LazyEvidence(lambda: s3_evidence_from_env(settings.stack))
    clients = Clients(boto3.client("sagemaker"), ssm, boto3.client("sns"), evidence)
    decision = handle_alarm_event(event, clients, SsmStateStore(ssm), lambda: datetime.now(UTC), settings)
    if decision.evidence_error or decision.alert_error:
        # Raise after acting, so the function's Errors metric (and its alarm) show the lost record or alert.
        # EventBridge's retry is then a duplicate and does nothing.
        raise RuntimeError(f"circuit breaker {decision.outcome}: {decision.evidence_error or decision.alert_error}")
    return decision.as_dict()
