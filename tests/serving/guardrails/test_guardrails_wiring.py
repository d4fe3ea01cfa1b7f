"""The breaker's Pulumi wiring, read from the real offline render of prod: the schedule that recovers and
re-judges, an alarm on every function's Errors metric paging the alert topic, DescribeAlarms granted on the
stack's alarms only, and the drill's forced alarm reaching the breaker."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from clinops.names import model_for_alarm
from serving.guardrails.breaker import FUNCTION_TIMEOUT_SECONDS, RECOVERY_DELAY_SECONDS
from serving.guardrails.events import RECONCILE_EVENT, RECONCILE_SCHEDULE, is_reconcile_event
from serving.guardrails.retrain import RETRAINING_SIGNALS
from serving.rollback.drill import DrillPlan
from tests.conftest import rendered

FUNCTIONS = ("circuit-breaker", "approval-recorder", "retraining")


def resources(plan: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        s["urn"].rsplit("::", 1)[1]: s["newState"]["inputs"] for s in plan["steps"] if s["newState"]["type"] == kind
    }


def test_the_breaker_runs_on_a_schedule_with_the_reconcile_event() -> None:
    plan = rendered("prod")
    rules = resources(plan, "aws:cloudwatch/eventRule:EventRule")
    schedule = rules["circuit-breaker-reconcile-schedule"]
    assert schedule["scheduleExpression"] == RECONCILE_SCHEDULE == "rate(5 minutes)"
    target = resources(plan, "aws:cloudwatch/eventTarget:EventTarget")["circuit-breaker-reconcile-target"]
    assert is_reconcile_event(json.loads(target["input"])) and json.loads(target["input"]) == RECONCILE_EVENT
    permission = resources(plan, "aws:lambda/permission:Permission")["circuit-breaker-reconcile-invoke"]
    assert permission["principal"] == "events.amazonaws.com"


def test_every_guardrail_function_has_an_errors_alarm_that_pages_the_alert_topic() -> None:
    """All three functions are built by one method (`Guardrails._function`); prod has the breaker."""
    plan = rendered("prod")
    alarms = resources(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")
    functions = {k: v for k, v in resources(plan, "aws:lambda/function:Function").items() if k in FUNCTIONS}
    topic_actions = {json.dumps(a["alarmActions"]) for n, a in alarms.items() if n.endswith("-dlq-depth")}
    assert "circuit-breaker" in functions
    for purpose in functions:
        alarm = alarms[f"{purpose}-errors"]
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/Lambda", "Errors", "Sum")
        assert alarm["dimensions"]["FunctionName"] == functions[purpose]["name"]
        assert alarm["threshold"] == 0 and alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert json.dumps(alarm["alarmActions"]) in topic_actions  # the same topic the DLQ alarms page
    assert functions["circuit-breaker"]["timeout"] == FUNCTION_TIMEOUT_SECONDS < RECOVERY_DELAY_SECONDS


def test_the_breaker_may_read_the_stacks_alarms_and_nothing_else() -> None:
    plan = rendered("prod")
    policy = json.loads(resources(plan, "aws:iam/rolePolicy:RolePolicy")["circuit-breaker-permissions"]["policy"])
    reads = [s for s in policy["Statement"] if "cloudwatch:DescribeAlarms" in s["Action"]]
    assert len(reads) == 1 and reads[0]["Action"] == ["cloudwatch:DescribeAlarms"]
    [resource] = [reads[0]["Resource"]] if isinstance(reads[0]["Resource"], str) else reads[0]["Resource"]
    assert resource.endswith(":alarm:clinops-prod-*") and resource.startswith("arn:aws:cloudwatch:")


def _matches(name: str, matchers: list) -> bool:
    """EventBridge's alarmName matching: exact strings or {"wildcard": ...} (`*` spans any characters)."""
    return any(fnmatch.fnmatchcase(name, m["wildcard"]) if isinstance(m, dict) else name == m for m in matchers)


def test_the_drills_forced_alarm_reaches_the_breaker_and_not_retraining() -> None:
    plan = rendered("prod")
    rules = resources(plan, "aws:cloudwatch/eventRule:EventRule")
    breaker_names = json.loads(rules["circuit-breaker-events"]["eventPattern"])["detail"]["alarmName"]
    retraining_names = json.loads(rules["retraining-forward-events"]["eventPattern"])["detail"]["alarmName"]
    breaker = resources(plan, "aws:lambda/function:Function")["circuit-breaker"]
    models = breaker["environment"]["variables"]["MODELS"].split(",")
    for model in models:
        alarm = DrillPlan(stack="prod", model=model, slo_seconds=600, actor="x").alarm_name
        assert _matches(alarm, breaker_names)
        # The rules match by wildcard (exact lists for 50 models exceed EventBridge's pattern size), so
        # `*-drift` also delivers `*-score-drift`; the retraining handler then refuses it by its exact suffix:
        # a drill must not start a training run.
        delivered = _matches(alarm, retraining_names)
        assert not delivered or model_for_alarm("prod", models, alarm, RETRAINING_SIGNALS) is None
