"""The gate: every engine over the same plan, exceptions applied, one verdict."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policies import controls
from policies.exceptions import DEFAULT_PATH, Waiver, load
from policies.model import CheckResult, EngineReport
from policies.plan import Plan

EngineFn = Callable[[Plan], EngineReport]


def _clinops(plan: Plan) -> EngineReport:
    from policies.crossguard import evaluate

    return evaluate(plan)


def _checkov(plan: Plan) -> EngineReport:
    from policies.engines.checkov_engine import scan

    return scan(plan)


def _cdk_nag(plan: Plan) -> EngineReport:
    from policies.engines.cdknag_engine import scan

    return scan(plan)


ENGINES: dict[str, EngineFn] = {"clinops": _clinops, "checkov": _checkov, "cdk-nag": _cdk_nag}
EXCEPTION_RULE = "CLIN-GATE-001"


@dataclass(frozen=True)
class Judged:
    result: CheckResult
    waiver: Waiver | None = None

    @property
    def blocking(self) -> bool:
        return self.result.status == "failed" and self.result.mandatory and self.waiver is None


@dataclass
class Verdict:
    stack: str
    plan_hash: str
    judged: list[Judged]
    reports: list[EngineReport]
    waivers_in_force: list[Waiver] = field(default_factory=list)
    unused_waivers: list[Waiver] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(j.blocking for j in self.judged)

    def blocking(self) -> list[Judged]:
        return [j for j in self.judged if j.blocking]


def plan_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def run_gate(
    plan: Plan,
    plan_text: str,
    engines: Sequence[str] = tuple(ENGINES),
    exceptions_path: Path = DEFAULT_PATH,
    today: dt.date | None = None,
) -> Verdict:
    waivers, problems = load(exceptions_path, today)
    reports = [ENGINES[name](plan) for name in engines]
    stack_urn = plan.stack_urn()
    judged: list[Judged] = []
    used: set[int] = set()
    for report in reports:
        for result in report.results:
            waiver = None
            if result.status == "failed":
                waiver = next(
                    (w for w in waivers if w.matches(result.engine, result.rule_id, result.urn, plan.stack)), None
                )
                if waiver:
                    used.add(waiver.index)
            judged.append(Judged(result, waiver))
    for problem in problems:  # a broken exception fails the gate like any other finding
        judged.append(
            Judged(
                CheckResult(
                    engine="clinops",
                    rule_id=EXCEPTION_RULE,
                    title="Exceptions are accountable and current",
                    severity="high",
                    controls=(controls.ACTIVITY_REVIEW,),
                    urn=stack_urn,
                    resource_type="policies/exceptions.yaml",
                    status="failed",
                    message=problem,
                    fix="Give every exception a reason, an owner and a future expiry date.",
                )
            )
        )
    judged.sort(key=lambda j: j.result.sort_key())
    in_scope = [w for w in waivers if not w.stacks or plan.stack in w.stacks]
    return Verdict(
        stack=plan.stack,
        plan_hash=plan_hash(plan_text),
        judged=judged,
        reports=reports,
        waivers_in_force=[w for w in in_scope if w.index in used],
        unused_waivers=[w for w in in_scope if w.index not in used],
    )
