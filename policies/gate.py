"""The gate: every engine over the same plan, exceptions applied, one verdict."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from policies import controls
from policies.exceptions import DEFAULT_PATH, Waiver, load
from policies.model import CheckResult, EngineReport
from policies.plan import Plan

EnginesFn = Callable[[list[Plan]], list[EngineReport]]


def _clinops(plans: list[Plan]) -> list[EngineReport]:
    from policies.crossguard import evaluate

    return [evaluate(plan) for plan in plans]


def _checkov(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.checkov_engine import scan_plans

    return scan_plans(plans)


def _cdk_nag(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.cdknag_engine import scan_plans

    return scan_plans(plans)


def _access(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.access_engine import scan_plans

    return scan_plans(plans)


# Each engine judges a batch of plans at once: checkov and cdk-nag pay their start-up once per gate run.
ENGINES: dict[str, EnginesFn] = {"clinops": _clinops, "checkov": _checkov, "cdk-nag": _cdk_nag, "access": _access}
# Engines that work mostly in a Node process: they run in threads beside the Python engines.
BACKGROUND = ("cdk-nag", "access")
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
    return run_gates([(plan, plan_text)], engines, exceptions_path, today)[0]


def run_gates(
    plans: Sequence[tuple[Plan, str]],
    engines: Sequence[str] = tuple(ENGINES),
    exceptions_path: Path = DEFAULT_PATH,
    today: dt.date | None = None,
) -> list[Verdict]:
    """Gate several plans in one run. cdk-nag and the access engine work mostly inside their Node processes, so
    they run in threads beside checkov and our rules: on two cores the engines overlap instead of queueing."""
    waivers, problems = load(exceptions_path, today, engines=tuple(ENGINES))
    batch = [plan for plan, _ in plans]
    with ThreadPoolExecutor(max_workers=len(BACKGROUND)) as pool:
        background = {name: pool.submit(ENGINES[name], batch) for name in engines if name in BACKGROUND}
        by_engine = {name: ENGINES[name](batch) for name in engines if name not in background}
        by_engine.update({name: future.result() for name, future in background.items()})
    return [
        _verdict(plan, text, [by_engine[name][i] for name in engines], waivers, problems)
        for i, (plan, text) in enumerate(plans)
    ]


def _verdict(
    plan: Plan, plan_text: str, reports: list[EngineReport], waivers: list[Waiver], problems: list[str]
) -> Verdict:
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
