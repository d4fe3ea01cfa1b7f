"""The SLO rules (policies/rules/slo.py) on rendered plans: the shipped stacks and a 50-model mesh pass; removing a
burn alarm, dropping the topic action, stretching a window past the rollback SLO or serving a model without SLO
alarms fails, on the model's endpoint or the alarm. "Prod" and the models come from the stack file the gate
binds, not from the plan. (The small compliant-baseline cases are in tests/policies/cases.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from clinops.models import SLO_DEFAULTS, Slo
from clinops.slo import METRIC_DELAY_SECONDS, WORKBOOK_TIERS, detection_seconds, window_fill_seconds
from infra.render import render
from policies.crossguard import evaluate
from policies.gate import bind_stack
from policies.plan import Plan, parse_plan
from policies.rules.slo import RULES
from tests.conftest import rendered

SLO_RULES = {r.id for r in RULES}
MODEL = "readmission-risk"
ALARM = "clinops-prod-readmission-risk"
ENDPOINT = f"{MODEL}-endpoint"  # the endpoint resource's logical name


def _judge(doc: dict, stack: str, root: Path | None = None) -> list[tuple[str, str, str]]:
    """(rule, resource name, message) of every failed SLO result, the plan bound to its stack file."""
    plan = bind_stack(parse_plan(doc), stack, root)
    return _failures(plan)


def _failures(plan: Plan) -> list[tuple[str, str, str]]:
    report = evaluate(plan)
    return [
        (r.rule_id, r.urn.split("::")[-1], r.message)
        for r in report.results
        if r.rule_id in SLO_RULES and r.status == "failed"
    ]


def _step(doc: dict, name: str) -> dict:
    return next(s["newState"] for s in doc["steps"] if s["urn"].endswith(f"::{name}"))


def _drop(doc: dict, predicate: Callable[[str], bool]) -> dict:
    doc["steps"] = [s for s in doc["steps"] if not predicate(s["urn"].split("::")[-1])]
    return doc


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_pass(stack: str) -> None:
    plan = bind_stack(parse_plan(rendered(stack)), stack)
    report = evaluate(plan)
    mine = [r for r in report.results if r.rule_id in SLO_RULES]
    assert [(r.rule_id, r.message) for r in mine if r.status == "failed"] == []
    if stack == "prod":  # every endpoint rule judged the served model; dev and staging have nothing to prove
        assert {r.rule_id for r in mine if r.urn.split("::")[-1] == ENDPOINT} == {
            "CLIN-SLO-001",
            "CLIN-SLO-003",
            "CLIN-SLO-004",
        }


def test_removing_a_burn_alarm_fails_on_the_models_endpoint() -> None:
    doc = _drop(rendered("prod"), lambda name: name == f"{ALARM}-slo-availability-fast-long")
    failures = _judge(doc, "prod")
    assert ("CLIN-SLO-001", ENDPOINT) in {(r, n) for r, n, _ in failures}
    assert any(r == "CLIN-SLO-004" and "nothing pages on an outage" in m for r, _, m in failures)


def test_dropping_the_topic_action_fails_on_the_tier() -> None:
    doc = rendered("prod")
    tier = _step(doc, f"{ALARM}-slo-availability-fast")
    tier["inputs"]["alarmActions"] = []
    tier["propertyDependencies"].pop("alarmActions")
    failures = _judge(doc, "prod")
    assert [(r, n) for r, n, _ in failures] == [("CLIN-SLO-002", f"{ALARM}-slo-availability-fast")]
    assert "does not notify the alert topic clinops-prod-alerts" in failures[0][2]


def test_stretching_the_fast_window_beyond_the_rollback_slo_fails() -> None:
    doc = rendered("prod")
    for query in _step(doc, f"{ALARM}-slo-availability-fast-long")["inputs"]["metricQueries"]:
        if "metric" in query:
            query["metric"]["period"] = 86400
    failures = _judge(doc, "prod")
    # prod: 99.9% over 30 days; 86400 s x 14.4 x 0.001 = 1244.16 s + 120 s, rollback SLO 600 s
    assert any(
        r == "CLIN-SLO-004" and n == ENDPOINT and "pages after 1364 s" in m and "rollback SLO is 600 s" in m
        for r, n, m in failures
    ), failures
    assert any(r == "CLIN-SLO-001" and "the tier's window is 3600 s" in m for r, _, m in failures)


def test_a_model_with_no_slo_alarms_fails_even_when_the_plan_hides_it() -> None:
    doc = _drop(rendered("prod"), lambda name: name.startswith(f"{ALARM}-slo-") or name == f"{ALARM}-cost-per-1000")
    plan = parse_plan(doc)
    plan.config = {}  # the plan's own word is not asked: the stack file bound below says prod and its models
    failures = _failures(bind_stack(plan, "prod"))
    assert {r for r, n, _ in failures if n == ENDPOINT} == {"CLIN-SLO-001", "CLIN-SLO-003", "CLIN-SLO-004"}


def test_prod_is_decided_by_the_bound_stack_not_the_plan() -> None:
    """The same alarm-less plan, bound to the prod stack file, fails; dev's own plan without alarms would not."""
    doc = _drop(rendered("dev"), lambda name: "-slo-" in name or name.endswith("-cost-per-1000"))
    assert _judge(doc, "dev") == []
    prod = _drop(rendered("prod"), lambda name: "-slo-" in name)
    assert _judge(prod, "prod")


def test_fill_time_matches_hand_computed_windows() -> None:
    # a burn rate of 14.4 on a 0.1% budget fires once 1.44% of the window is bad
    assert window_fill_seconds(3600, 1, 14.4, 0.001) == pytest.approx(51.84)
    assert window_fill_seconds(300, 1, 14.4, 0.001) == pytest.approx(4.32)
    # half the traffic failing takes twice as long: 0.0144 / 0.5 of the window
    assert window_fill_seconds(3600, 1, 14.4, 0.001, 0.5) == pytest.approx(103.68)
    # two breaching datapoints: one more whole period
    assert window_fill_seconds(300, 2, 14.4, 0.001) == pytest.approx(304.32)
    assert window_fill_seconds(3600, 1, 14.4, 0.001, 0.01) is None  # 1% bad never reaches 1.44%
    prod = Slo.model_validate(SLO_DEFAULTS["prod"])
    fast = WORKBOOK_TIERS[0]
    assert detection_seconds(fast, prod.window_days, 1.0, prod.error_budget) == pytest.approx(
        51.84 + METRIC_DELAY_SECONDS
    )


@pytest.fixture(scope="module")
def mesh_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    from bench.render import mesh_contracts, mesh_root

    root = mesh_root(tmp_path_factory.mktemp("mesh"), 50)
    with mesh_contracts(50):
        return render("prod", root=root), root


def test_a_rendered_50_model_mesh_passes(mesh_plan: tuple[dict, Path]) -> None:
    doc, root = mesh_plan
    plan = bind_stack(parse_plan(json.loads(json.dumps(doc))), "prod", root)
    report = evaluate(plan)
    mine = [r for r in report.results if r.rule_id in SLO_RULES]
    assert [(r.rule_id, r.message) for r in mine if r.status == "failed"] == []
    endpoints = {r.urn for r in mine if r.rule_id == "CLIN-SLO-001"}
    assert len(endpoints) == 50
    assert sum(1 for r in mine if r.rule_id == "CLIN-SLO-002") == 50 * 4  # three availability tiers + latency


def test_the_mesh_fails_when_one_model_loses_its_alarms(mesh_plan: tuple[dict, Path]) -> None:
    doc, root = mesh_plan
    broken = _drop(json.loads(json.dumps(doc)), lambda name: name.startswith("clinops-prod-mesh-model-37-slo-"))
    failures = _judge(broken, "prod", root)
    assert {n for _, n, _ in failures} == {"mesh-model-37-endpoint"}
