"""The prod render carries SLO burn-rate alarms, the exhausted-budget alarm and the cost metric per model."""

from __future__ import annotations

import json

from clinops.config import load_from_stack_file
from clinops.names import BREAKER_ALARM_SUFFIXES, SLO_EXHAUSTED_SUFFIX, alarm_name
from tests.conftest import REPO, rendered

MODEL = "readmission-risk"


def _by_name(plan: dict) -> dict[str, dict]:
    out = {}
    for step in plan["steps"]:
        inputs = step["newState"]["inputs"]
        name = inputs.get("name") or inputs.get("alarmName")
        if isinstance(name, str):
            out[name] = {"type": step["newState"]["type"], **inputs}
    return out


def test_prod_has_multiwindow_burn_rate_alarms_to_the_alert_topic() -> None:
    plan = rendered("prod")
    named = _by_name(plan)
    topic = named[alarm_name("prod", MODEL, "5xx-rate")]["alarmActions"][0]  # the alert topic the rollback alarms use
    assert "alerts" in topic
    for tier, rate in (("fast", 14.4), ("medium", 6), ("slow", 1)):
        composite = named[alarm_name("prod", MODEL, f"slo-availability-{tier}")]
        assert composite["type"] == "aws:cloudwatch/compositeAlarm:CompositeAlarm"
        assert composite["alarmActions"] == [topic]
        long_, short = (alarm_name("prod", MODEL, f"slo-availability-{tier}-{w}") for w in ("long", "short"))
        assert composite["alarmRule"] == f'ALARM("{long_}") AND ALARM("{short}")'
        assert named[long_]["threshold"] == rate and named[short]["threshold"] == rate
    fast_long = named[alarm_name("prod", MODEL, "slo-availability-fast-long")]
    periods = {q["metric"]["period"] for q in fast_long["metricQueries"] if "metric" in q}
    assert periods == {3600}
    expression = next(q["expression"] for q in fast_long["metricQueries"] if "expression" in q)
    assert expression == "IF(invocations > 0, (errors / invocations) / 0.001, 0)"


def test_exhausted_budget_alarm_is_named_for_its_action() -> None:
    prod = load_from_stack_file("prod", REPO)
    model = next(m for m in prod.models if m.name == MODEL)
    action = prod.slo_for(model).exhausted_action
    assert action == "breaker"
    assert SLO_EXHAUSTED_SUFFIX[action] in BREAKER_ALARM_SUFFIXES  # the circuit breaker obeys it
    named = _by_name(rendered("prod"))
    exhausted = named[alarm_name("prod", MODEL, "slo-budget")]
    assert exhausted["threshold"] == round(30 / 7, 6)
    assert {q["metric"]["period"] for q in exhausted["metricQueries"] if "metric" in q} == {7 * 86400}


def test_cost_metric_alarm_and_dashboard_widget() -> None:
    named = _by_name(rendered("prod"))
    cost = named[alarm_name("prod", MODEL, "cost-per-1000")]
    assert cost["threshold"] == 1.0
    expression = next(q["expression"] for q in cost["metricQueries"] if "expression" in q)
    assert "* 0.115 /" in expression
    dashboard = next(
        s["newState"]["inputs"]
        for s in rendered("prod")["steps"]
        if s["newState"]["inputs"].get("dashboardName") == f"clinops-prod-{MODEL}"
    )
    body = json.loads(dashboard["dashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert "Cost per 1,000 predictions (USD, daily)" in titles
