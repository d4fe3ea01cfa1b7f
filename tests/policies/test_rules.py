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
