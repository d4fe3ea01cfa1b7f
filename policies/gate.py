"""The gate: every engine over the same plan, exceptions applied, one verdict."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from policies import controls
from policies.exceptions import DEFAULT_PATH, Waiver, load
from policies.model import CheckResult, EngineReport
from policies.plan import SECRET, Plan, PlanError

EnginesFn = Callable[[list[Plan]], list[EngineReport]]


def _clinops(plans: list[Plan]) -> list[EngineReport]:
    from policies.crossguard import evaluate

    return [evaluate(plan) for plan in plans]


def _checkov(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.checkov_engine import scan_plans

    return scan_plans(plans)


def _start_checkov() -> None:
    from policies.engines.checkov_engine import start_worker

    start_worker()


def _start_cdk_nag() -> None:
    from policies.engines.cdknag_engine import start_warm_up

    start_warm_up()


def _cdk_nag(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.cdknag_engine import scan_plans

    return scan_plans(plans)


def _access(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.access_engine import scan_plans

    return scan_plans(plans)


def _aws_config(plans: list[Plan]) -> list[EngineReport]:
    from policies.engines.config_conformance import scan_plans

    return scan_plans(plans)


# Each engine judges a batch of plans at once: checkov and cdk-nag pay their start-up once per gate run.
ENGINES: dict[str, EnginesFn] = {
    "clinops": _clinops,
    "checkov": _checkov,
    "cdk-nag": _cdk_nag,
    "aws-config": _aws_config,
    "access": _access,
}
# Engines that work mostly in a process of their own (checkov's Python worker, cdk-nag's and the access engine's
# Node): their threads mostly wait, beside our rules and aws-config on the main thread. checkov first: it is the
# longest.
BACKGROUND = ("checkov", "cdk-nag", "access")
# Start-ups that need no plan, begun before the plans are bound so they overlap with it (for the engine
# registered by default only: a stand-in registered in its place has nothing to start).
STARTERS: dict[str, tuple[EnginesFn, Callable[[], None]]] = {
    "checkov": (_checkov, _start_checkov),
    "cdk-nag": (_cdk_nag, _start_cdk_nag),
}
EXCEPTION_RULE = "CLIN-GATE-001"
COVERAGE_RULE = "CLIN-GATE-002"


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


def _normalised(value: object) -> object:
    """Stack config as Pulumi carries it (strings; structured values as JSON) in a comparable form."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def bind_stack(plan: Plan, stack: str | None = None, root: Path | None = None) -> Plan:
    """Tie the plan to the stack the gate was told it judges; that stack's own config file (`Pulumi.<stack>.yaml`
    under `root`, validated by clinops.config) gives the facts the rules judge by.

    Without `stack`, the stack the plan's URNs name is used. A plan for another stack, or whose config disagrees
    with the stack file (a prod plan saying environment: dev), is refused: judging it by its own word would let
    it pick the lenient rules. Raises PlanError (also for an empty plan) or ConfigError (invalid stack file).
    """
    from clinops.config import parse_pulumi_values, read_stack_file, validate

    plan.require_resources()
    stack = stack or plan.stack
    if plan.stack != stack:
        raise PlanError(
            f"the plan is for stack '{plan.stack}' (its URNs), not '{stack}'; fix: gate it with "
            f"--stack {plan.stack}, or plan stack {stack}"
        )
    expected, _ = read_stack_file(stack, root)  # read once: validated for the rules, compared with the plan
    config = validate(stack, parse_pulumi_values(dict(expected), stack))
    differing = sorted(
        key
        for key, value in plan.config.items()
        if key in expected and SECRET not in (value, expected[key]) and _normalised(value) != _normalised(expected[key])
    )
    if differing:
        shown = "; ".join(
            f"{k} is {plan.config[k]!r} in the plan, {expected[k]!r} in the stack file" for k in differing
        )
        raise PlanError(
            f"the plan's config disagrees with Pulumi.{stack}.yaml ({shown}); fix: plan again from "
            f"the stack's own config, or gate it as the stack it was planned for"
        )
    plan.stack_config = config
    return plan


def _run_engine(name: str, batch: list[Plan]) -> list[EngineReport]:
    """One engine over the batch. An engine that cannot read a resource's inputs (a shape the provider would
    reject) makes the plan unusable input, reported with the engine's reason rather than a traceback."""
    try:
        return ENGINES[name](batch)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
        raise PlanError(
            f"engine {name} cannot read this plan ({type(exc).__name__}: {exc}); fix: check the resource inputs "
            "against the provider's schema, or re-create the plan with `clinops render` or `pulumi preview --json`"
        ) from exc


def run_gate(
    plan: Plan,
    plan_text: str,
    engines: Sequence[str] = tuple(ENGINES),
    exceptions_path: Path = DEFAULT_PATH,
    today: dt.date | None = None,
    stack: str | None = None,
    stack_root: Path | None = None,
) -> Verdict:
    return run_gates([(plan, plan_text)], engines, exceptions_path, today, [stack], stack_root)[0]


def run_gates(
    plans: Sequence[tuple[Plan, str]],
    engines: Sequence[str] = tuple(ENGINES),
    exceptions_path: Path = DEFAULT_PATH,
    today: dt.date | None = None,
    stacks: Sequence[str | None] | None = None,
    stack_root: Path | None = None,
) -> list[Verdict]:
    """Gate several plans in one run. checkov, cdk-nag and the access engine work mostly inside processes of
    their own, so they run in threads beside our rules: on two cores the engines overlap instead of queueing.

    Each plan is first bound to the stack it is judged as (`stacks`, default: the one its URNs name) and that
    stack's config file under `stack_root` (`bind_stack`)."""
    start_engines(engines)
    for (plan, _), stack in zip(plans, stacks or [None] * len(plans), strict=True):
        bind_stack(plan, stack, stack_root)
    waivers, problems = load(exceptions_path, today, engines=tuple(ENGINES))
    batch = [plan for plan, _ in plans]
    with ThreadPoolExecutor(max_workers=len(BACKGROUND)) as pool:
        background = {name: pool.submit(_run_engine, name, batch) for name in engines if name in BACKGROUND}
        by_engine = {name: _run_engine(name, batch) for name in engines if name not in background}
        by_engine.update({name: future.result() for name, future in background.items()})
    return [
        _verdict(plan, text, [by_engine[name][i] for name in engines], waivers, problems)
        for i, (plan, text) in enumerate(plans)
    ]


def start_engines(engines: Sequence[str] = tuple(ENGINES)) -> None:
    """Begin the engines' plan-independent start-up (checkov's import in its own process) so it overlaps with
    what the caller does next: rendering or loading plans. Idempotent; `run_gates` calls it too."""
    for name in engines:
        engine, start = STARTERS.get(name, (None, None))
        if start is not None and ENGINES.get(name) is engine:
            start()


def _waiver_for(result: CheckResult, waivers: list[Waiver], plan: Plan, covered: dict[int, set[str]]) -> Waiver | None:
    waiver = next(
        (
            w
            for w in waivers
            if w.matches(result.engine, result.rule_id, result.urn, plan.stack, result.details or (result.message,))
        ),
        None,
    )
    if waiver:
        covered.setdefault(waiver.index, set()).add(result.urn)
    return waiver


def _coverage(plan: Plan, reports: list[EngineReport]) -> list[CheckResult]:
    """In prod, every resource type some engine judges, or a failure (waivable by a reviewed exception).

    Only a run of every registered engine can tell what nothing judges, so a partial run skips the check."""
    config = plan.stack_config
    if config is None or config.environment != "prod" or {r.engine for r in reports} < set(ENGINES):
        return []
    seen = {t for report in reports for t, state in report.coverage.items() if state == "seen"}
    results = []
    for resource in plan.resources:
        if not resource.custom or resource.type.startswith("pulumi:providers:"):
            continue
        judged = resource.type in seen
        message = "" if judged else f"no engine judges {resource.type}"
        results.append(
            CheckResult(
                engine="clinops",
                rule_id=COVERAGE_RULE,
                title="Every resource type in prod is judged by some engine",
                severity="medium",
                controls=(controls.ACTIVITY_REVIEW,),
                urn=resource.urn,
                resource_type=resource.type,
                status="passed" if judged else "failed",
                message=message,
                fix=""
                if judged
                else "Add a rule for this type (policies/rules/) or a reviewed exception saying why it needs none.",
                details=(message,) if message else (),
            )
        )
    return results


def _verdict(
    plan: Plan, plan_text: str, reports: list[EngineReport], waivers: list[Waiver], problems: list[str]
) -> Verdict:
    stack_urn = plan.stack_urn()
    judged: list[Judged] = []
    covered: dict[int, set[str]] = {}  # waiver index -> URNs it waived in this stack
    for report in reports:
        for result in report.results:
            waiver = _waiver_for(result, waivers, plan, covered) if result.status == "failed" else None
            judged.append(Judged(result, waiver))
    judged += [
        Judged(r, _waiver_for(r, waivers, plan, covered) if r.status == "failed" else None)
        for r in _coverage(plan, reports)
    ]
    problems = list(problems)
    models = len(plan.platform_config().get("models") or [])
    for waiver in waivers:
        urns = covered.get(waiver.index, set())
        if len(urns) > waiver.cap(models):
            problems.append(
                f"{waiver.label()} waives {len(urns)} resources in {plan.stack}, more than the "
                f"{waiver.cap(models)} reviewed (maxResources {waiver.max_resources} + maxResourcesPerModel "
                f"{waiver.max_resources_per_model} x {models} models); fix: review the new ones and raise the "
                "counts, or fix them"
            )
            # A waiver that outgrew its review waives nothing: every finding it covered shows again.
            judged = [Judged(j.result) if j.waiver is waiver else j for j in judged]
            covered.pop(waiver.index)
    for problem in problems:  # a broken exception fails the gate like any other finding
        judged.append(
            Judged(
                CheckResult(
                    engine="clinops",
                    rule_id=EXCEPTION_RULE,
                    title="Exceptions are accountable, narrow and current",
                    severity="high",
                    controls=(controls.ACTIVITY_REVIEW,),
                    urn=stack_urn,
                    resource_type="policies/exceptions.yaml",
                    status="failed",
                    message=problem,
                    fix="Give every exception a reason, an owner, the exact findings reviewed, a resource (count) "
                    "and an expiry within the allowed lifetime.",
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
        waivers_in_force=[w for w in in_scope if w.index in covered],
        unused_waivers=[w for w in in_scope if w.index not in covered],
    )
