"""Every rule passes the compliant baseline and fails, naming the culprit, when one thing is broken."""

from __future__ import annotations

import pytest

from policies.crossguard import evaluate
from policies.model import EngineReport
from policies.rules import ALL_RULES, RULES_BY_ID, Rule
from tests.policies.baseline import compliant
from tests.policies.cases import FAILING, PASSING, Case, _logs_to_mlflow
from tests.policies.planbuilder import PlanBuilder

# Rules about resources that must not exist: the compliant stack has none for them to judge.
ABSENCE_RULES = {"CLIN-NET-001"}


def _report(case: Case | None = None) -> tuple[PlanBuilder, EngineReport]:
    b = compliant()
    if case is not None:
        case.mutate(b)
    return b, evaluate(b.plan())


@pytest.fixture(scope="module")
def baseline_report() -> EngineReport:
    return _report()[1]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.id)
def test_compliant_stack_passes(rule: Rule, baseline_report: EngineReport) -> None:
    mine = [r for r in baseline_report.results if r.rule_id == rule.id]
    assert [r.message for r in mine if r.status == "failed"] == []
    if rule.id not in ABSENCE_RULES:
        assert mine, f"{rule.id} judged nothing in the compliant stack: the baseline lacks {rule.resource_types}"


@pytest.mark.parametrize("case", FAILING, ids=lambda c: f"{c.rule_id}-{c.label}")
def test_broken_stack_fails_on_the_culprit(case: Case) -> None:
    b, report = _report(case)
    culprit = b.urn(case.culprit) if case.culprit else b.stack_urn
    failed = [r for r in report.results if r.status == "failed"]
    mine = [r for r in failed if r.rule_id == case.rule_id and r.urn == culprit]
    assert mine, f"{case.rule_id} did not fail {culprit}; failures: {[(r.rule_id, r.urn) for r in failed]}"
    assert mine[0].message and mine[0].fix == RULES_BY_ID[case.rule_id].fix
    # The change breaks this rule (and any it declares), not unrelated ones.
    assert {r.rule_id for r in failed} == {case.rule_id, *case.also}


@pytest.mark.parametrize("case", PASSING, ids=lambda c: f"{c.rule_id}-{c.label}")
def test_compliant_variation_passes(case: Case) -> None:
    _, report = _report(case)
    assert [(r.rule_id, r.message) for r in report.results if r.status == "failed"] == []
    assert any(r.rule_id == case.rule_id for r in report.results)


def test_every_rule_has_a_failing_fixture() -> None:
    assert {c.rule_id for c in FAILING} == set(RULES_BY_ID)


def test_a_step_that_lifts_isolation_to_log_to_mlflow_is_accepted_in_the_evidence() -> None:
    b = compliant()
    _logs_to_mlflow()(b)
    report = evaluate(b.plan())
    result = next(r for r in report.results if r.rule_id == "CLIN-SM-002" and r.urn == b.urn("readmission-pipeline"))
    assert result.status == "passed"
    assert result.message == (
        "accepted: Preprocess runs without network isolation to log to this stack's MLflow server "
        "'clinops-prod-mlflow': in the private subnets, no internet path, through the MLflow VPC endpoint"
    )
    # the compliant stack (every step isolated) accepts nothing, so nothing is said
    baseline = next(r for r in _report()[1].results if r.rule_id == "CLIN-SM-002")
    assert baseline.status == "passed" and baseline.message == ""


@pytest.mark.parametrize("source", ["baseline", "prod"])
def test_rules_share_props_read_only(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate converts each resource's props once for all rules (rules.base.shared_caches): a rule that changed
    the dicts it reads would change what every later rule sees. After all rules ran, every shared dict still equals
    a fresh conversion, and the rules did share one cache."""
    from policies.crossguard import policy_resources
    from policies.plan import parse_plan
    from policies.rules import base
    from tests.conftest import rendered

    plan = compliant().plan() if source == "baseline" else parse_plan(rendered("prod"))
    resources = policy_resources(plan)
    views: list[base.StackView] = []
    real_view = base.StackView

    def recording_view(args: object) -> base.StackView:
        views.append(real_view(args))  # type: ignore[arg-type]
        return views[-1]

    monkeypatch.setattr(base, "StackView", recording_view)
    with base.shared_caches(resources) as caches:
        from policies.crossguard import _run_collecting, policy_config_from_plan

        config = policy_config_from_plan(plan)
        for rule in ALL_RULES:
            _run_collecting(rule, resources, config, plan.stack_urn())
    assert len(views) == len(ALL_RULES) and all(v._props is caches.props for v in views)
    assert caches.props, "no rule read any props"
    by_urn = {r.urn: r for r in resources}
    changed = [urn for urn, props in caches.props.items() if props != base.plain(by_urn[urn].props)]
    assert changed == []
