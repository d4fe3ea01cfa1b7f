"""The release scorecard leaders ask for, computed from the hash-chained evidence log (verified first: a log
that does not verify is refused) plus CloudWatch traffic where available.

Definitions (what each figure is made of, so a reviewer can recompute it from the log):
- cycle time per package: registration -> approval -> production. Registration is the approval entry's
  `details.registered_at` when the recorder wrote it, else the package's first entry in the log; approval is
  its `approval` entry with status Approved; production is its first `release` entry with outcome deployed.
- promotion success: a deployment with no `rollback` (outcome rolled-back) of that model within 7 days, and
  before the next deployment; deployments younger than 7 days are pending, not counted.
- rollbacks by cause: the signal the alarm names (`5xx-rate`, `drift`, `quality`, `slo-budget`, ...), from the
  alarm's name as `clinops.names` builds it; a rollback without an alarm counts as `manual`.
- per incident (a rolled-back rollback): time-to-rollback = entry time - the alarm's state change; time-to-
  detect = the alarm's state change - onset, where onset is the deployment when the rollback came within
  7 days of one (a bad release), else the model's first drift entry since (its `details.onset_at` if set).
- SLO attainment and budget left: from Invocations / Invocation5XXErrors over the SLO window (CloudWatch).
- cost per 1,000 predictions: instance-hours of the deployed minimum fleet since its deployment x the price
  table / invocations x 1,000 (the same formula as the dashboard's metric math).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Protocol

from clinops.config import StackConfig
from clinops.evidence import EvidenceEntry, EvidenceError, EvidenceLog
from clinops.names import BREAKER_ALARM_SUFFIXES, ROLLBACK_ALARM_SUFFIXES, endpoint_name
from clinops.pricing import PriceError, cost_per_1000, price_table
from clinops.slo import budget_remaining

PROMOTION_SURVIVAL = timedelta(days=7)


class ScorecardRefused(Exception):
    """The evidence cannot be trusted (tampered, unreadable): no scorecard rests on it."""


@dataclass(frozen=True)
class Traffic:
    invocations: float
    errors_5xx: float


class TrafficSource(Protocol):
    def traffic(self, endpoint: str, start: datetime, end: datetime) -> Traffic | None: ...


@dataclass
class Promotion:
    model: str
    version: str | None
    registered_at: str | None
    approved_at: str | None
    deployed_at: str
    registration_to_approval_h: float | None
    approval_to_production_h: float | None
    cycle_time_h: float | None
    outcome: str  # survived | rolled-back | pending


@dataclass
class Incident:
    model: str
    cause: str
    alarm: str | None
    onset_at: str | None
    detected_at: str | None
    rolled_back_at: str
    time_to_detect_s: float | None
    time_to_rollback_s: float | None


@dataclass
class ModelService:
    model: str
    availability_objective: float
    attainment_percent: float | None
    budget_left_percent: float | None
    invocations: float | None
    cost_per_1000_usd: float | None
    cost_target_usd: float
    source: str


@dataclass
class Scorecard:
    stack: str
    since: str | None
    entries: int
    head: str | None
    promotions: list[Promotion] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    services: list[ModelService] = field(default_factory=list)

    @property
    def promotion_success_percent(self) -> float | None:
        judged = [p for p in self.promotions if p.outcome != "pending"]
        if not judged:
            return None
        return 100.0 * sum(p.outcome == "survived" for p in judged) / len(judged)

    @property
    def rollbacks_by_cause(self) -> dict[str, int]:
        return dict(sorted(Counter(i.cause for i in self.incidents).items()))

    def summary(self) -> dict[str, Any]:
        def med(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return round(median(known), 2) if known else None

        return {
            "promotions": len(self.promotions),
            "promotion_success_percent": _round(self.promotion_success_percent),
            "median_cycle_time_h": med([p.cycle_time_h for p in self.promotions]),
            "rollbacks": len(self.incidents),
            "rollbacks_by_cause": self.rollbacks_by_cause,
            "median_time_to_detect_s": med([i.time_to_detect_s for i in self.incidents]),
            "median_time_to_rollback_s": med([i.time_to_rollback_s for i in self.incidents]),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "since": self.since,
            "evidence": {"entries": self.entries, "head": self.head, "verified": True},
            "summary": self.summary(),
            "promotions": [asdict(p) for p in self.promotions],
            "incidents": [asdict(i) for i in self.incidents],
            "services": [asdict(s) for s in self.services],
        }


def trusted_entries(log: EvidenceLog) -> tuple[list[EvidenceEntry], str | None]:
    """Every entry, only if the whole log verifies."""
    try:
        report, chain = log.check()
    except EvidenceError as exc:
        raise ScorecardRefused(f"cannot read the evidence log {log.store!r}: {exc}") from None
    if not report.ok:
        raise ScorecardRefused(
            f"the evidence log {log.store!r} does not verify ({len(report.problems)} problem(s), first: "
            f"{report.problems[0]}); no scorecard from tampered evidence. Fix: `clinops evidence verify` and have "
            "the evidence owner investigate"
        )
    return [e for _, e in sorted(chain.trusted.items())], (str(report.head) if report.head else None)


def compute(
    config: StackConfig,
    log: EvidenceLog,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    traffic: TrafficSource | None = None,
) -> Scorecard:
    entries, head = trusted_entries(log)
    now = now or datetime.now(UTC)
    card = Scorecard(config.stack, since.date().isoformat() if since else None, len(entries), head)
    models = [m.name for m in config.models]
    for model in models:
        mine = [e for e in entries if e.model == model]
        deployments = [e for e in mine if e.kind == "release" and e.details.get("outcome") == "deployed"]
        rollbacks = [e for e in mine if e.kind == "rollback" and e.details.get("outcome") == "rolled-back"]
        for i, deployed in enumerate(deployments):
            if since and deployed.at < since:
                continue
            nxt = deployments[i + 1].at if i + 1 < len(deployments) else None
            card.promotions.append(_promotion(mine, deployed, rollbacks, nxt, now))
        for rollback in rollbacks:
            if since and rollback.at < since:
                continue
            card.incidents.append(_incident(config.stack, models, mine, deployments, rollback))
    for model_config in config.models:
        card.services.append(_service(config, model_config, entries, traffic, now))
    return card


def _promotion(
    mine: list[EvidenceEntry],
    deployed: EvidenceEntry,
    rollbacks: list[EvidenceEntry],
    next_deploy: datetime | None,
    now: datetime,
) -> Promotion:
    package = deployed.package_arn
    of_package = [e for e in mine if package and e.package_arn == package]
    approval = next(
        (e for e in of_package if e.kind == "approval" and e.details.get("status", "Approved") == "Approved"), None
    )
    registered = _time(approval.details.get("registered_at")) if approval else None
    if registered is None and of_package:
        registered = of_package[0].at
    approved = approval.at if approval else None
    end = deployed.at + PROMOTION_SURVIVAL
    if next_deploy is not None:
        end = min(end, next_deploy)
    rolled = any(deployed.at < r.at <= end for r in rollbacks)
    outcome = "rolled-back" if rolled else ("pending" if now < deployed.at + PROMOTION_SURVIVAL else "survived")
    return Promotion(
        model=deployed.model,
        version=deployed.model_version,
        registered_at=_iso(registered),
        approved_at=_iso(approved),
        deployed_at=_iso(deployed.at) or "",
        registration_to_approval_h=_hours(registered, approved),
        approval_to_production_h=_hours(approved, deployed.at),
        cycle_time_h=_hours(registered, deployed.at),
        outcome=outcome,
    )


def _incident(
    stack: str,
    models: list[str],
    mine: list[EvidenceEntry],
    deployments: list[EvidenceEntry],
    rollback: EvidenceEntry,
) -> Incident:
    alarm = rollback.details.get("alarm")
    cause = alarm_cause(stack, rollback.model, alarm) if alarm else str(rollback.details.get("cause", "manual"))
    detected = _time(rollback.details.get("alarm_state_changed_at")) or _alarm_time_of(mine, rollback)
    before = [d for d in deployments if d.at <= rollback.at]
    onset: datetime | None = None
    if before and rollback.at - before[-1].at <= PROMOTION_SURVIVAL and cause in ROLLBACK_ALARM_SUFFIXES:
        onset = before[-1].at  # a bad release: the failure began when it went live
    else:
        since = before[-1].at if before else None
        drifts = [e for e in mine if e.kind == "drift" and (since is None or e.at >= since) and e.at <= rollback.at]
        if drifts:
            onset = _time(drifts[0].details.get("onset_at")) or drifts[0].at
        elif before:
            onset = before[-1].at
    return Incident(
        model=rollback.model,
        cause=cause,
        alarm=alarm,
        onset_at=_iso(onset),
        detected_at=_iso(detected),
        rolled_back_at=_iso(rollback.at) or "",
        time_to_detect_s=_seconds(onset, detected),
        time_to_rollback_s=_seconds(detected, rollback.at),
    )


def _alarm_time_of(mine: list[EvidenceEntry], rollback: EvidenceEntry) -> datetime | None:
    """The alarm's state change, from the decision that requested this rollback: the breaker records `landed`
    from its schedule, which no longer holds the alarm event, so the landed entry may not carry the time."""
    rollback_id = rollback.details.get("rollback_id")
    if not rollback_id:
        return None
    for entry in mine:
        if entry.kind == "rollback" and entry.seq < rollback.seq and entry.details.get("rollback_id") == rollback_id:
            found = _time(entry.details.get("alarm_state_changed_at"))
            if found is not None:
                return found
    return None


def alarm_cause(stack: str, model: str, alarm: str) -> str:
    prefix = endpoint_name(stack, model) + "-"
    suffix = alarm[len(prefix) :] if alarm.startswith(prefix) else alarm
    known = (*ROLLBACK_ALARM_SUFFIXES, *BREAKER_ALARM_SUFFIXES)
    return suffix if suffix in known else "other-alarm"


def _service(
    config: StackConfig, model: Any, entries: list[EvidenceEntry], traffic: TrafficSource | None, now: datetime
) -> ModelService:
    slo = config.slo_for(model)
    service = ModelService(
        model=model.name,
        availability_objective=slo.availability_percent,
        attainment_percent=None,
        budget_left_percent=None,
        invocations=None,
        cost_per_1000_usd=None,
        cost_target_usd=slo.cost_per_1000_usd,
        source="evidence only (no CloudWatch traffic)",
    )
    if traffic is None:
        return service
    start = now - timedelta(days=slo.window_days)
    seen = traffic.traffic(endpoint_name(config.stack, model.name), start, now)
    if seen is None:
        return service
    service.source = f"CloudWatch, last {slo.window_days} d"
    service.invocations = seen.invocations
    if seen.invocations > 0:
        service.attainment_percent = round(100.0 * (1 - seen.errors_5xx / seen.invocations), 4)
        service.budget_left_percent = round(
            100.0 * budget_remaining(seen.errors_5xx, seen.invocations, slo.error_budget), 2
        )
    deployed = [
        e for e in entries if e.model == model.name and e.kind == "release" and e.details.get("outcome") == "deployed"
    ]
    if deployed:
        live_from = max(deployed[0].at, start)
        instance_hours = model.serving.min_instances * (now - live_from).total_seconds() / 3600
        try:
            price = price_table(config.instance_prices).instance(model.serving.instance_type)
        except PriceError:
            return service
        cost = cost_per_1000(instance_hours, price, seen.invocations)
        service.cost_per_1000_usd = round(cost, 4) if cost is not None else None
    return service


class CloudWatchTraffic:
    """Invocations and 5XX sums of an endpoint's variant over a window (GetMetricData, one datapoint each)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def traffic(self, endpoint: str, start: datetime, end: datetime) -> Traffic | None:
        period = max(60, int((end - start).total_seconds()) // 60 * 60)
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
        queries = [
            {
                "Id": qid,
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
                    "Period": period,
                    "Stat": "Sum",
                },
            }
            for qid, metric in (("invocations", "Invocations"), ("errors", "Invocation5XXErrors"))
        ]
        answer = self.client.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
        sums = {r["Id"]: sum(r.get("Values", [])) for r in answer.get("MetricDataResults", [])}
        if not sums.get("invocations"):
            return None
        return Traffic(invocations=sums["invocations"], errors_5xx=sums.get("errors", 0.0))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _hours(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds() / 3600, 2)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
