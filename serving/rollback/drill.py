"""`clinops drill rollback`: the quarterly failover exercise of the runbook, measured and recorded.

It forces the model's score-drift alarm into ALARM (CloudWatch SetAlarmState), times how long the endpoint takes
to serve the verified last-known-good configuration through the real path (alarm -> EventBridge -> circuit
breaker, which reads the alarm's state -> UpdateEndpoint), puts the alarm back to OK whatever happens, and appends
a `drill` evidence entry with the measured seconds, pass/fail against the stack's `rollbackSloSeconds` and the
phase the breaker recorded for its rollback (`landed` once it saw the endpoint InService on the target; the
schedule records it within 5 minutes if the drill finished first).

Why score-drift: the breaker's EventBridge rule passes the drift, score-drift and quality alarms only (a rollback
alarm outside a deployment pages, it does not switch), and drift and quality alarms also start a training run.

Controlled window: a drill switches production traffic, so it runs only inside a declared window (`--window
START/END`, or CLINOPS_DRILL_WINDOW, from the change ticket) - or with `--now` and a written reason, which is
recorded. Preflight refuses anything the breaker would refuse or defer (mid-deployment, a rollback of
its own in flight, alarms pending, no/missing/unverified last-known-good, already on it, cooldown), so a drill
never waits out a timeout that was certain.

Afterwards the endpoint serves the last-known-good: keep it (`clinops rollback reconcile`) or restore the pin
(`clinops rollback reconcile --check --restore-reason ...`, then `pulumi up --refresh`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from clinops.names import NONE, alarm_name, endpoint_name, last_known_good_parameter, pinned_parameter
from serving.guardrails.breaker import DEFAULT_COOLDOWN_SECONDS, IN_DEPLOYMENT
from serving.guardrails.events import iso, parse_time
from serving.guardrails.outputs import EvidenceSink
from serving.guardrails.state import IN_FLIGHT, SsmStateStore
from serving.guardrails.verified import check_verified

DEFAULT_ALARM_SIGNAL = "score-drift"  # reaches the breaker and nothing else (module doc)
DEFAULT_POLL_SECONDS = 10.0
MIN_REASON_CHARS = 10


class DrillRefused(Exception):
    """The drill did not start: nothing was changed."""


class DrillNotRecorded(Exception):
    """The drill ran (the alarm is restored) but its evidence could not be written: it does not count."""

    def __init__(self, result: DrillResult, error: Exception) -> None:
        super().__init__(f"drill {result.outcome} in {result.seconds} s but not recorded: {error}")
        self.result = result


@dataclass(frozen=True)
class DrillWindow:
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> DrillWindow:
        """`2026-03-01T02:00Z/2026-03-01T04:00Z` (ISO 8601 interval, both ends with a time zone)."""
        first, _, second = text.partition("/")
        start: datetime | None
        end: datetime | None
        try:
            start, end = datetime.fromisoformat(first.strip()), datetime.fromisoformat(second.strip())
        except ValueError:
            start = end = None
        if start is None or end is None or start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ValueError(
                f"'{text}' is not a window; fix: START/END in ISO 8601 with a zone, e.g. "
                "2026-03-01T02:00Z/2026-03-01T04:00Z"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{iso(self.start)}/{iso(self.end)}"


@dataclass(frozen=True)
class DrillPlan:
    stack: str
    model: str
    slo_seconds: int
    actor: str
    alarm: str | None = None  # default: the model's score-drift alarm
    timeout_seconds: int = 900
    poll_seconds: float = DEFAULT_POLL_SECONDS
    window: DrillWindow | None = None
    now_reason: str | None = None  # `--now`: run outside a window, for this recorded reason
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS

    @property
    def endpoint(self) -> str:
        return endpoint_name(self.stack, self.model)

    @property
    def alarm_name(self) -> str:
        return self.alarm or alarm_name(self.stack, self.model, DEFAULT_ALARM_SIGNAL)


@dataclass(frozen=True)
class DrillResult:
    outcome: str  # passed | failed-slo | timed-out
    seconds: float  # alarm forced -> endpoint InService on the last-known-good (or the timeout)
    slo_seconds: int
    from_config: str
    to_config: str
    observed: list[dict[str, Any]] = field(default_factory=list)  # status transitions with elapsed seconds
    evidence_seq: int | None = None
    breaker_phase: str | None = None  # what the breaker's state record said when the drill ended

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def authorise(plan: DrillPlan, now: datetime) -> str:
    """Why this drill may run now, or DrillRefused."""
    if plan.window is not None and plan.window.start <= now <= plan.window.end:
        return f"declared window {plan.window}"
    if plan.now_reason is not None:
        if len(plan.now_reason.strip()) < MIN_REASON_CHARS:
            raise DrillRefused(f"--now needs a reason of at least {MIN_REASON_CHARS} characters (it is recorded)")
        return f"--now: {plan.now_reason.strip()}"
    where = f"outside the declared window {plan.window}" if plan.window else "no drill window is declared"
    raise DrillRefused(
        f"{where} (now {iso(now)}); fix: --window START/END from the change ticket, or --now --reason TEXT"
    )


def preflight(plan: DrillPlan, sagemaker: Any, cloudwatch: Any, ssm: Any, now: datetime) -> tuple[str, str]:
    """(serving config, last-known-good config) when the breaker would act on the forced alarm; else DrillRefused."""
    try:
        alarms = cloudwatch.describe_alarms(AlarmNames=[plan.alarm_name]).get("MetricAlarms", [])
        described = sagemaker.describe_endpoint(EndpointName=plan.endpoint)
        lkg = ssm.get_parameter(Name=last_known_good_parameter(plan.stack, plan.model))["Parameter"]["Value"]
        pinned = ssm.get_parameter(Name=pinned_parameter(plan.stack, plan.model))["Parameter"]["Value"]
    except ClientError as exc:
        raise DrillRefused(f"cannot read the drill's resources: {exc}") from None
    if not alarms:
        raise DrillRefused(f"alarm {plan.alarm_name} does not exist")
    status, serving = described["EndpointStatus"], described.get("EndpointConfigName", "")
    if status in IN_DEPLOYMENT or status != "InService":
        raise DrillRefused(f"endpoint {plan.endpoint} is {status}: drill only a settled endpoint")
    if lkg.strip().lower() == NONE:
        raise DrillRefused("no last-known-good configuration is recorded: there is nothing to fail over to")
    if serving == lkg:
        raise DrillRefused(f"endpoint already serves the last-known-good {lkg}: reconcile or restore first")
    if serving != pinned:
        raise DrillRefused(f"endpoint serves {serving}, not the pinned {pinned}: reconcile first")
    try:
        created = sagemaker.describe_endpoint_config(EndpointConfigName=lkg)["CreationTime"]
    except ClientError:
        raise DrillRefused(f"last-known-good configuration {lkg} does not exist in SageMaker") from None
    marker, why_not = check_verified(ssm, plan.stack, plan.model, lkg, created)
    if marker is None:
        raise DrillRefused(f"last-known-good configuration {lkg} is not verified: {why_not}")
    state = SsmStateStore(ssm).read(plan.stack, plan.model).state
    if state is not None and state.phase in IN_FLIGHT:
        raise DrillRefused(f"the circuit breaker's rollback {state.rollback_id} is {state.phase}: wait until it ends")
    if state is not None and state.pending:
        waiting = ", ".join(f"{p.alarm} ({p.waits_for})" for p in state.pending)
        raise DrillRefused(f"alarms are pending at the circuit breaker ({waiting}): it may act on them - not a drill")
    last = parse_time(state.last_action_at) if state else None
    if last is not None and now - last < timedelta(seconds=plan.cooldown_seconds):
        raise DrillRefused(
            f"the circuit breaker is in its cooldown after the rollback at {iso(last)}; "
            f"it would refuse before {iso(last + timedelta(seconds=plan.cooldown_seconds))}"
        )
    return serving, lkg


def run_drill(
    plan: DrillPlan,
    *,
    sagemaker: Any,
    cloudwatch: Any,
    ssm: Any,
    evidence: EvidenceSink,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
) -> DrillResult:
    authorisation = authorise(plan, clock())
    serving, lkg = preflight(plan, sagemaker, cloudwatch, ssm, clock())
    drill_id = uuid.uuid4().hex[:12]
    started = clock()
    cloudwatch.set_alarm_state(
        AlarmName=plan.alarm_name,
        StateValue="ALARM",
        StateReason=f"clinops drill {drill_id}: controlled failover exercise ({authorisation})"[:1023],
    )
    observed: list[dict[str, Any]] = []
    reached: datetime | None = None
    try:
        while True:
            now = clock()
            described = sagemaker.describe_endpoint(EndpointName=plan.endpoint)
            status, config = described["EndpointStatus"], described.get("EndpointConfigName")
            if not observed or (observed[-1]["status"], observed[-1]["config"]) != (status, config):
                observed.append(
                    {"elapsed_seconds": round((now - started).total_seconds(), 1), "status": status, "config": config}
                )
            if status == "InService" and config == lkg:
                reached = now
                break
            if (now - started).total_seconds() >= plan.timeout_seconds:
                break
            sleep(plan.poll_seconds)
    finally:  # the alarm goes back to OK even if polling failed: a forced ALARM must not outlive the drill
        cloudwatch.set_alarm_state(
            AlarmName=plan.alarm_name, StateValue="OK", StateReason=f"clinops drill {drill_id} over"
        )
    seconds = round(((reached or clock()) - started).total_seconds(), 1)
    outcome = "timed-out" if reached is None else ("passed" if seconds <= plan.slo_seconds else "failed-slo")
    after = SsmStateStore(ssm).read(plan.stack, plan.model).state
    phase = after.phase if after is not None else None
    result = DrillResult(outcome, seconds, plan.slo_seconds, serving, lkg, observed, breaker_phase=phase)
    try:
        entry = evidence.append(
            "drill",
            model=plan.model,
            actor=plan.actor,
            reason=f"rollback drill {drill_id}: {plan.alarm_name} forced to ALARM; {outcome} in {seconds} s "
            f"(SLO {plan.slo_seconds} s); authorised by {authorisation}"[:2000],
            details={
                "drill_id": drill_id,
                "outcome": outcome,
                "passed": outcome == "passed",
                "measured_seconds": seconds,
                "slo_seconds": plan.slo_seconds,
                "timeout_seconds": plan.timeout_seconds,
                "alarm": plan.alarm_name,
                "endpoint": plan.endpoint,
                "from_config": serving,
                "to_config": lkg,
                "started_at": iso(started),
                "authorisation": authorisation,
                "observed": observed,
                "breaker_phase": phase,
            },
        )
    except Exception as exc:
        raise DrillNotRecorded(result, exc) from exc
    return replace(result, evidence_seq=entry.seq)
