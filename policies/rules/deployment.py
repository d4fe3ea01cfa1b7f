"""Deployment guardrails: a new model reaches patients gradually and rolls back by itself, within the SLO.

SageMaker limits, from the API reference (https://docs.aws.amazon.com/sagemaker/latest/APIReference/):
- TrafficRoutingConfig.WaitIntervalInSeconds: 0 to 3600 (API_TrafficRoutingConfig.html).
- BlueGreenUpdatePolicy.TerminationWaitInSeconds: 0 to 3600, default 0; MaximumExecutionTimeoutInSeconds:
  600 to 28800, and "should be larger than the total waiting time specified in TerminationWaitInSeconds and
  WaitIntervalInSeconds" (API_BlueGreenUpdatePolicy.html).
- AutoRollbackConfig.Alarms: 1 to 10 alarms (API_AutoRollbackConfig.html).
"""

from __future__ import annotations

import math
from typing import Any

from pulumi_policy import PolicyResource

from policies.controls import CONTINGENCY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, dig, rule

ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
GRADUAL_MODES = ("CANARY", "LINEAR")
WAIT_SECONDS = (0, 3600)
TERMINATION_WAIT_SECONDS = (0, 3600)
EXECUTION_TIMEOUT_SECONDS = (600, 28800)
ROLLBACK_ALARMS = (1, 10)
# Worst-case delay between a failure and its first datapoint being evaluated: SageMaker publishes invocation
# metrics every 60 s (API_MetricsConfig.html: "invocation metrics continue to be published at the default
# 60-second interval"), and CloudWatch evaluates a standard-resolution alarm about once a minute.
PUBLISHING_DELAY_SECONDS = 120


def _routing(props: dict[str, Any]) -> Any:
    return dig(props, "deploymentConfig", "blueGreenUpdatePolicy", "trafficRoutingConfiguration")


def _alarm_entries(props: dict[str, Any]) -> list[Any]:
    return as_list(dig(props, "deploymentConfig", "autoRollbackConfiguration", "alarms"))


def rollback_alarms(stack: StackView, endpoint: PolicyResource) -> list[tuple[str, PolicyResource | None]]:
    """(alarm name, the stack's MetricAlarm or None) for each auto-rollback alarm of the endpoint.

    A literal name is matched against the alarms' `name`; a name unknown until apply (taken from an alarm's
    output) is matched to the alarms `deploymentConfig` was computed from.
    """
    by_name = stack.by_input(ALARM, "name")
    linked = stack.refs(endpoint, "deploymentConfig", ALARM)
    resolved: list[tuple[str, PolicyResource | None]] = []
    for entry in _alarm_entries(stack.props(endpoint)):
        name = dig(entry, "alarmName")
        if isinstance(name, str) and name in by_name:
            resolved.append((name, by_name[name]))
            linked = [a for a in linked if a.urn != by_name[name].urn]
        elif name is UNKNOWN and linked:
            alarm = linked.pop(0)
            resolved.append((alarm.name, alarm))
        else:
            resolved.append((str(name), None))
    return resolved


def _watched_endpoints(props: dict[str, Any]) -> set[Any]:
    queries = as_list(props.get("metricQueries"))
    dimensions = [props.get("dimensions")] + [dig(q, "metric", "dimensions") for q in queries]
    return {d.get("EndpointName") for d in dimensions if isinstance(d, dict)}


def detection_seconds(props: dict[str, Any]) -> Any:
    """Worst-case time from failure to alarm: period x evaluationPeriods + publishing delay; None when the
    alarm sets no period, UNKNOWN when one is computed during apply.

    `evaluationPeriods` (not `datapointsToAlarm`) bounds it from above: an M-of-N alarm may fire sooner.
    """
    queries = [q for q in as_list(props.get("metricQueries")) if isinstance(q, dict)]
    periods = [props.get("period")] + [q.get("period") for q in queries] + [dig(q, "metric", "period") for q in queries]
    known = [p for p in periods if isinstance(p, int | float)]
    evaluations = props.get("evaluationPeriods")
    if UNKNOWN in (*periods, evaluations):
        return UNKNOWN
    if not known or not isinstance(evaluations, int | float):
        return None
    return int(max(known) * evaluations) + PUBLISHING_DELAY_SECONDS


@rule(
    id="CLIN-DEP-001",
    title="Production endpoints shift traffic gradually (canary or linear)",
    severity="high",
    controls=(CONTINGENCY,),
    types=(ENDPOINT,),
    config=("environment",),
    fix="Set deployment_config.blue_green_update_policy.traffic_routing_configuration.type to CANARY "
    "(with canary_size) or LINEAR (with linear_step_size).",
)
def gradual_traffic_shifting(stack: StackView, findings: Findings) -> None:
    if stack.config["environment"] != "prod":
        return  # dev and staging may replace a model all at once to iterate quickly
    for endpoint in stack.of_type(ENDPOINT):
        props = stack.props(endpoint)
        routing = _routing(props)
        mode = dig(routing, "type")
        if mode is UNKNOWN:
            findings.unknown(endpoint, "deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration.type")
        elif mode not in GRADUAL_MODES:
            how = "a rolling update" if dig(props, "deploymentConfig", "rollingUpdatePolicy") else mode or "ALL_AT_ONCE"
            findings.fail(
                endpoint,
                f"prod endpoint '{endpoint.name}' shifts traffic by {how}: every patient meets the new model at once",
            )
        elif not dig(routing, "canarySize" if mode == "CANARY" else "linearStepSize", "value"):
            findings.fail(endpoint, f"prod endpoint '{endpoint.name}' uses {mode} without a step size")


@rule(
    id="CLIN-DEP-002",
    title="Endpoints roll back on 1-10 alarms of this stack that watch them",
    severity="high",
    controls=(CONTINGENCY,),
    reads=(ALARM,),
    types=(ENDPOINT,),
    config=("environment",),
    fix="List 1-10 alarms of this stack in deployment_config.auto_rollback_configuration.alarms, each with "
    "an EndpointName dimension equal to the endpoint's explicit name.",
)
def rollback_alarms_watch_endpoint(stack: StackView, findings: Findings) -> None:
    low, high = ROLLBACK_ALARMS
    for endpoint in stack.of_type(ENDPOINT):
        props = stack.props(endpoint)
        entries = _alarm_entries(props)
        if not entries:
            if stack.config["environment"] == "prod":
                findings.fail(endpoint, f"prod endpoint '{endpoint.name}' has no auto-rollback alarms")
            continue
        if not low <= len(entries) <= high:
            findings.fail(
                endpoint,
                f"endpoint '{endpoint.name}' lists {len(entries)} rollback alarms; SageMaker accepts {low} to {high}",
            )
        name = props.get("name")
        for alarm_name, alarm in rollback_alarms(stack, endpoint):
            if alarm is None:
                findings.fail(endpoint, f"rollback alarm {alarm_name} is not declared in this stack")
            elif not isinstance(name, str):
                findings.fail(
                    endpoint,
                    f"endpoint '{endpoint.name}' has no explicit name, so alarm {alarm_name} "
                    "cannot be shown to watch it",
                )
            elif name not in _watched_endpoints(stack.props(alarm)):
                findings.fail(endpoint, f"rollback alarm {alarm_name} watches no EndpointName={name} metric")


def _bake_count(stack: StackView, endpoint: PolicyResource, routing: dict[str, Any]) -> int:
    """How many times the wait interval elapses: once between the two steps of a canary (or after an
    all-at-once shift), once between each pair of LINEAR steps."""
    step = dig(routing, "linearStepSize") or {}
    if routing.get("type") != "LINEAR" or not isinstance(step.get("value"), int | float) or step["value"] <= 0:
        return 1
    if step.get("type") == "CAPACITY_PERCENT":
        return max(1, math.ceil(100 / step["value"]) - 1)
    configs = stack.refs(endpoint, "endpointConfigName", ENDPOINT_CONFIG)
    instances = sum(
        v.get("initialInstanceCount") or 0
        for c in configs
        for v in as_list(stack.props(c).get("productionVariants"))
        if isinstance(v, dict)
    )
    return max(1, math.ceil(instances / step["value"]) - 1) if instances else 1


@rule(
    id="CLIN-DEP-003",
    title="Blue/green waits and timeout are within SageMaker's limits",
    severity="medium",
    controls=(CONTINGENCY,),
    reads=(ENDPOINT_CONFIG,),
    types=(ENDPOINT,),
    fix="Keep wait_interval_in_seconds and termination_wait_in_seconds within 0-3600 and set "
    "maximum_execution_timeout_in_seconds (600-28800) above the total of the waits.",
)
def blue_green_timing(stack: StackView, findings: Findings) -> None:
    for endpoint in stack.of_type(ENDPOINT):
        policy = dig(stack.props(endpoint), "deploymentConfig", "blueGreenUpdatePolicy")
        if not isinstance(policy, dict):
            continue
        routing = policy.get("trafficRoutingConfiguration") or {}
        values = {
            "waitIntervalInSeconds": routing.get("waitIntervalInSeconds"),
            "terminationWaitInSeconds": policy.get("terminationWaitInSeconds", 0),
            "maximumExecutionTimeoutInSeconds": policy.get("maximumExecutionTimeoutInSeconds"),
        }
        limits = (WAIT_SECONDS, TERMINATION_WAIT_SECONDS, EXECUTION_TIMEOUT_SECONDS)
        for (key, value), (low, high) in zip(values.items(), limits, strict=True):
            if value is UNKNOWN:
                findings.unknown(endpoint, key)
            elif not isinstance(value, int | float):
                findings.fail(endpoint, f"endpoint '{endpoint.name}' {key} is not set")
            elif not low <= value <= high:
                findings.fail(endpoint, f"endpoint '{endpoint.name}' {key}={value} is outside {low}-{high}")
        wait, termination, timeout = values.values()
        if all(isinstance(v, int | float) for v in (wait, termination, timeout)):
            total = wait * _bake_count(stack, endpoint, routing) + termination
            if timeout <= total:
                findings.fail(
                    endpoint,
                    f"endpoint '{endpoint.name}' times out after {timeout} s, not more than "
                    f"its {total} s of waiting: the deployment would be cut off mid-bake",
                )


@rule(
    id="CLIN-DEP-004",
    title="Rollback alarms detect a failure within the rollback SLO",
    severity="high",
    controls=(CONTINGENCY,),
    reads=(ENDPOINT,),
    types=(ALARM,),
    config=("rollbackSloSeconds",),
    fix="Shorten period or evaluation_periods of the alarm so period x evaluation periods + "
    f"{PUBLISHING_DELAY_SECONDS} s fits within clinops:rollbackSloSeconds.",
)
def detection_within_slo(stack: StackView, findings: Findings) -> None:
    slo = stack.number("rollbackSloSeconds")
    judged: set[str] = set()
    for endpoint in stack.of_type(ENDPOINT):
        for _, alarm in rollback_alarms(stack, endpoint):
            if alarm is None or alarm.urn in judged:
                continue
            judged.add(alarm.urn)
            seconds = detection_seconds(stack.props(alarm))
            if seconds is UNKNOWN:
                findings.unknown(alarm, "period")
            elif seconds is None:
                findings.fail(alarm, f"alarm '{alarm.name}' has no known period and evaluation periods")
            elif seconds > slo:
                findings.fail(
                    alarm,
                    f"alarm '{alarm.name}' may take {seconds} s to fire (with "
                    f"{PUBLISHING_DELAY_SECONDS} s publishing delay); rollback SLO is {slo} s",
                )


# Advisory: if the bake is shorter than detection, a faulty canary gets full traffic before its alarm can
# fire. SageMaker still watches the alarms until the old fleet is terminated, so rollback is delayed, not lost.
@rule(
    id="CLIN-DEP-005",
    title="Canary and linear bakes outlast alarm detection",
    severity="medium",
    controls=(CONTINGENCY,),
    reads=(ALARM,),
    types=(ENDPOINT,),
    mandatory=False,
    fix="Set wait_interval_in_seconds to at least the slowest rollback alarm's worst-case detection time.",
)
def bake_outlasts_detection(stack: StackView, findings: Findings) -> None:
    for endpoint in stack.of_type(ENDPOINT):
        routing = _routing(stack.props(endpoint))
        wait = dig(routing, "waitIntervalInSeconds")
        if dig(routing, "type") not in GRADUAL_MODES or not isinstance(wait, int | float):
            continue
        alarms = [a for _, a in rollback_alarms(stack, endpoint) if a is not None]
        detections = [(s, a.name) for a in alarms if isinstance(s := detection_seconds(stack.props(a)), int)]
        slowest, alarm = max(detections, default=(0, ""))
        if slowest > wait:
            findings.fail(
                endpoint,
                f"endpoint '{endpoint.name}' bakes {wait} s per step but alarm '{alarm}' may need {slowest} s to fire",
            )


RULES = (
    gradual_traffic_shifting,
    rollback_alarms_watch_endpoint,
    blue_green_timing,
    detection_within_slo,
    bake_outlasts_detection,
)
