"""Service level objectives in production, judged on the plan: every served model has its error-budget alarms
(multi-window, multi-burn-rate tiers after clinops.slo, built by infra.slo), they reach a person through the
platform's alert topic, cost per 1,000 predictions is alarmed on its target, and a total outage pages within
the rollback SLO.

Which models must have them, and their objectives, are facts from outside the plan (`sloModels`, from the stack
config the gate binds): a plan cannot drop a model's SLOs by leaving the model out of its own config. An endpoint
in a prod plan that no declared model accounts for fails too.

Time to detect (CLIN-SLO-004): CloudWatch evaluates an alarm over period x evaluation periods, on a sliding
window by default that advances at each evaluation, every minute for periods of a minute or more
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation-window.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html). A window alarm on a
burn rate therefore fires once the bad share of its newest period reaches rate x budget (clinops.slo.
window_fill_seconds), plus SageMaker's 60-second publishing interval and the minute until the next evaluation
(clinops.slo.METRIC_DELAY_SECONDS). A wall-clock window would wait for the period to end: refused.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyResource

from clinops.names import SLO_EXHAUSTED_SUFFIX, alarm_name, alert_topic_name, endpoint_name
from clinops.slo import METRIC_DELAY_SECONDS, WORKBOOK_TIERS, BurnTier, window_fill_seconds
from policies.controls import ACTIVITY_REVIEW, CONTINGENCY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, dig, rule

ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
TOPIC = "aws:sns/topic:Topic"
# The tiers infra.slo builds: every workbook tier on the availability budget, the fast tier on latency.
SIGNAL_TIERS: tuple[tuple[str, BurnTier], ...] = (
    *(("availability", tier) for tier in WORKBOOK_TIERS),
    ("latency", WORKBOOK_TIERS[0]),
)
QUALITY_SUFFIXES = ("slo-auc", "slo-calibration")
COST_SUFFIX = "cost-per-1000"
SLO_FACTS = ("environment", "sloModels")


def _stack(view: StackView) -> str:
    """The stack the URNs name (the gate refuses a plan whose URNs name another stack than it judges)."""
    return view.resources[0].urn.removeprefix("urn:pulumi:").split("::")[0] if view.resources else ""


class Models:
    """The prod models a rule judges, with their alarms looked up by the names infra.slo gives them."""

    def __init__(self, view: StackView) -> None:
        self.view = view
        self.stack = _stack(view)
        self.prod = view.config["environment"] == "prod"
        self.declared: list[dict[str, Any]] = [m for m in view.config.get("sloModels") or [] if isinstance(m, dict)]
        self.alarms = view.by_input(ALARM, "name")
        self.composites = view.by_input(COMPOSITE, "alarmName")
        self.endpoints = view.by_input(ENDPOINT, "name")

    def name(self, model: dict[str, Any], signal: str) -> str:
        return alarm_name(self.stack, str(model["name"]), signal)

    def endpoint(self, model: dict[str, Any]) -> str:
        return endpoint_name(self.stack, str(model["name"]))

    def culprit(self, model: dict[str, Any]) -> PolicyResource | None:
        """The model's endpoint, or None (the stack) when the plan does not declare it."""
        return self.endpoints.get(self.endpoint(model))

    def topic(self) -> PolicyResource | None:
        wanted = alert_topic_name(self.stack)
        return next((t for t in self.view.of_type(TOPIC) if self.view.props(t).get("name") == wanted), None)


def _watches(props: dict[str, Any], endpoint: str) -> bool:
    queries = as_list(props.get("metricQueries"))
    return any(dig(q, "metric", "dimensions", "EndpointName") == endpoint for q in queries)


def _periods(props: dict[str, Any]) -> set[Any]:
    return {dig(q, "metric", "period") for q in as_list(props.get("metricQueries")) if dig(q, "metric")}


def _window_problems(models: Models, model: dict[str, Any], signal: str, tier: BurnTier) -> list[str]:
    """A tier: a composite alarm ANDing a long and a short window alarm, each a burn rate of this model's endpoint
    over the tier's window at the tier's rate for the model's SLO window."""
    base = models.name(model, f"slo-{signal}-{tier.name}")
    composite = models.composites.get(base)
    if composite is None:
        return [f"no {signal} {tier.name} burn-rate alarm {base}"]
    problems = []
    rule_text = str(models.view.props(composite).get("alarmRule") or "")
    rate = tier.burn_rate(int(model["windowDays"]))
    for label, seconds in zip(("long", "short"), tier.windows, strict=True):
        name = f"{base}-{label}"
        alarm = models.alarms.get(name)
        if alarm is None:
            problems.append(f"no {label}-window alarm {name} for the {signal} {tier.name} tier")
            continue
        props = models.view.props(alarm)
        if f'ALARM("{name}")' not in rule_text or " OR " in rule_text:
            problems.append(f"{base} does not require ALARM({name}) together with the other window")
        if not _watches(props, models.endpoint(model)):
            problems.append(f"{name} watches no EndpointName={models.endpoint(model)} metric")
        if _periods(props) != {seconds}:
            problems.append(
                f"{name} reads periods {sorted(map(str, _periods(props)))}, the tier's window is {seconds} s"
            )
        if props.get("threshold") != rate:
            problems.append(
                f"{name} fires at {props.get('threshold')}x, the {tier.name} tier's rate for a "
                f"{model['windowDays']}-day window is {rate}x"
            )
    return problems


@rule(
    id="CLIN-SLO-001",
    title="Every production model has its error-budget burn-rate, exhausted-budget and quality alarms",
    severity="high",
    controls=(CONTINGENCY, ACTIVITY_REVIEW),
    types=(ENDPOINT,),
    reads=(ALARM, COMPOSITE),
    config=SLO_FACTS,
    fix="Serve every prod model through infra.stack (infra.slo.ModelSlo builds the alarms), and declare every "
    "endpoint's model in the stack's clinops:models with a pinned package.",
)
def models_have_slo_alarms(stack: StackView, findings: Findings) -> None:
    models = Models(stack)
    if not models.prod:
        return  # dev and staging get the alarms too, but only prod must prove them
    for model in models.declared:
        problems = [p for signal, tier in SIGNAL_TIERS for p in _window_problems(models, model, signal, tier)]
        exhausted = models.name(model, SLO_EXHAUSTED_SUFFIX[str(model.get("exhaustedAction", "freeze"))])
        for name in (exhausted, *(models.name(model, s) for s in QUALITY_SUFFIXES)):
            if name not in models.alarms:
                problems.append(f"no alarm {name}")
        for problem in problems:
            findings.fail(models.culprit(model), f"prod model '{model['name']}': {problem}")
    accounted = {models.endpoint(m) for m in models.declared}
    for endpoint in stack.of_type(ENDPOINT):
        served = stack.props(endpoint).get("name")
        if served is UNKNOWN:
            findings.unknown(endpoint, "name")
        elif served not in accounted:
            findings.fail(
                endpoint,
                f"prod endpoint '{endpoint.name}' ({served}) serves no model the stack config declares, so no SLO "
                "says what it must meet",
            )


def _notifies(models: Models, resource: PolicyResource, topic: PolicyResource | None) -> Any:
    """True when the alarm's actions include the alert topic (by reference or its ARN); UNKNOWN if unknowable."""
    actions = models.view.props(resource).get("alarmActions")
    if topic is not None and any(t.urn == topic.urn for t in models.view.refs(resource, "alarmActions")):
        return True
    if actions is UNKNOWN:
        return UNKNOWN
    suffix = f":{alert_topic_name(models.stack)}"
    return any(isinstance(a, str) and a.endswith(suffix) for a in as_list(actions))


@rule(
    id="CLIN-SLO-002",
    title="Burn-rate tiers notify the alert topic: fast tiers page, the slow tier tickets",
    severity="high",
    controls=(CONTINGENCY, ACTIVITY_REVIEW),
    types=(COMPOSITE,),
    reads=(TOPIC,),
    config=SLO_FACTS,
    fix="List the platform's alert topic (infra.alerts) in alarm_actions of every burn-rate tier, and tag each "
    "tier clinops:severity as clinops.slo.WORKBOOK_TIERS says (page or ticket).",
)
def burn_tiers_reach_a_person(stack: StackView, findings: Findings) -> None:
    models = Models(stack)
    if not models.prod:
        return
    topic = models.topic()
    for model in models.declared:
        for signal, tier in SIGNAL_TIERS:
            composite = models.composites.get(models.name(model, f"slo-{signal}-{tier.name}"))
            if composite is None:
                continue  # CLIN-SLO-001 reports the missing tier
            wired = _notifies(models, composite, topic)
            if wired is UNKNOWN:
                findings.unknown(composite, "alarmActions")
            elif not wired:
                findings.fail(
                    composite,
                    f"burn-rate tier '{composite.name}' does not notify the alert topic "
                    f"{alert_topic_name(models.stack)}: the budget could burn unseen",
                )
            severity = dig(models.view.props(composite), "tags", "clinops:severity")
            if severity != tier.notify:
                findings.fail(
                    composite,
                    f"burn-rate tier '{composite.name}' is tagged to {severity or 'nobody'}; the {tier.name} tier "
                    f"must {tier.notify}",
                )


@rule(
    id="CLIN-SLO-003",
    title="Cost per 1,000 predictions of every production model is alarmed on its target",
    severity="medium",
    controls=(ACTIVITY_REVIEW,),
    types=(ENDPOINT,),
    reads=(ALARM, TOPIC),
    config=SLO_FACTS,
    fix="Keep infra.slo's cost-per-1000 alarm for every prod model: Invocations of its endpoint in the metric "
    "math, threshold = slo.costPer1000Usd, alarm actions on the alert topic.",
)
def cost_alarm_on_target(stack: StackView, findings: Findings) -> None:
    models = Models(stack)
    if not models.prod:
        return
    topic = models.topic()
    for model in models.declared:
        name = models.name(model, COST_SUFFIX)
        alarm = models.alarms.get(name)
        culprit = models.culprit(model)
        if alarm is None:
            findings.fail(culprit, f"prod model '{model['name']}' has no cost alarm {name}")
            continue
        props = models.view.props(alarm)
        target = model.get("costPer1000Usd")
        if props.get("threshold") != target:
            findings.fail(culprit, f"{name} fires at ${props.get('threshold')}, the model's target is ${target}")
        if not _watches(props, models.endpoint(model)):
            findings.fail(culprit, f"{name} reads no metric of endpoint {models.endpoint(model)}")
        wired = _notifies(models, alarm, topic)
        if wired is UNKNOWN:
            findings.unknown(alarm, "alarmActions")
        elif not wired:
            findings.fail(culprit, f"{name} does not notify the alert topic {alert_topic_name(models.stack)}")


def fast_tier_detection(models: Models, model: dict[str, Any]) -> tuple[float | None, list[str]]:
    """Seconds from the start of a total outage until the fast availability tier pages (both windows must be in
    ALARM), from the window alarms as planned; problems that make it unknowable instead of a number."""
    tier = WORKBOOK_TIERS[0]
    base = models.name(model, f"slo-availability-{tier.name}")
    budget = float(model["errorBudget"])
    fills: list[float] = []
    problems: list[str] = []
    for label in ("long", "short"):
        alarm = models.alarms.get(f"{base}-{label}")
        if alarm is None:
            problems.append(f"no {label}-window alarm {base}-{label}, so nothing pages on an outage")
            continue
        props = models.view.props(alarm)
        if dig(props, "evaluationWindow", "wallClockWindow") is not None:
            problems.append(f"{base}-{label} evaluates on a wall-clock window: it waits for the period to end")
        periods = [p for p in _periods(props) if isinstance(p, int | float)]
        threshold, datapoints = props.get("threshold"), props.get("datapointsToAlarm") or props.get("evaluationPeriods")
        if not periods or not isinstance(threshold, int | float) or not isinstance(datapoints, int | float):
            problems.append(f"{base}-{label} has no known period, threshold and datapoints to alarm")
            continue
        fill = window_fill_seconds(max(periods), int(datapoints), threshold, budget)
        if fill is None:
            problems.append(f"{base}-{label} at {threshold}x never fires on a total outage (budget {budget})")
        else:
            fills.append(fill)
    if problems:
        return None, problems
    return max(fills) + METRIC_DELAY_SECONDS, []


@rule(
    id="CLIN-SLO-004",
    title="A total outage pages (fast burn-rate tier) within the rollback SLO",
    severity="high",
    controls=(CONTINGENCY,),
    types=(ENDPOINT,),
    reads=(ALARM,),
    config=(*SLO_FACTS, "rollbackSloSeconds"),
    fix="Keep the fast tier's windows (1 h and 5 min, one datapoint, sliding evaluation) and its burn rate, or "
    "tighten slo.availabilityPercent / slo.windowDays, so detection + "
    f"{METRIC_DELAY_SECONDS} s fits clinops:rollbackSloSeconds.",
)
def outage_pages_within_rollback_slo(stack: StackView, findings: Findings) -> None:
    models = Models(stack)
    if not models.prod:
        return
    slo = stack.number("rollbackSloSeconds")
    for model in models.declared:
        seconds, problems = fast_tier_detection(models, model)
        culprit = models.culprit(model)
        for problem in problems:
            findings.fail(culprit, f"prod model '{model['name']}': {problem}")
        if seconds is not None and seconds > slo:
            findings.fail(
                culprit,
                f"prod model '{model['name']}': a total outage pages after {seconds:.0f} s (fast tier, with "
                f"{METRIC_DELAY_SECONDS} s publishing and evaluation delay); the rollback SLO is {slo} s",
            )


RULES = (models_have_slo_alarms, burn_tiers_reach_a_person, cost_alarm_on_target, outage_pages_within_rollback_slo)
