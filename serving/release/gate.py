"""The policy gate over the configuration a release would deploy (rendered from the staged stack file)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinops.exitcodes import GateFailed, UnusableInput

MAX_RECORDED_FINDINGS = 20  # evidence entries stay small; the full verdict is in the gate bundle


@dataclass(frozen=True)
class GateOptions:
    engines: tuple[str, ...] | None = None  # default: every engine policies.gate.ENGINES registers
    exceptions_path: Path | None = None  # default: policies/exceptions.yaml
    today: dt.date | None = None  # the date exceptions expire against (default: today)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    plan_hash: str
    engines: tuple[str, ...]
    blocking: list[dict[str, Any]] = field(default_factory=list)
    waivers: int = 0
    declared: frozenset[str] = frozenset()  # physical names in the plan (endpoint configs, alarms, parameters)

    def as_evidence(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "plan_hash": self.plan_hash,
            "engines": list(self.engines),
            "blocking": self.blocking[:MAX_RECORDED_FINDINGS],
            "blocking_count": len(self.blocking),
            "waivers_in_force": self.waivers,
        }


def run(stack: str, staged_root: Path, options: GateOptions) -> GateResult:
    """Render the staged stack and gate it; GateFailed (exit 7) carries the verdict for the evidence."""
    from clinops.config import ConfigError
    from infra.render import dumps, render
    from policies.exceptions import DEFAULT_PATH, ExceptionsFileError
    from policies.gate import ENGINES, run_gate
    from policies.plan import PlanError, parse_plan

    engines = options.engines or tuple(ENGINES)
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise UnusableInput(f"unknown gate engine(s) {', '.join(unknown)}; fix: --engine one of {', '.join(ENGINES)}")
    try:
        plan = render(stack, root=staged_root)
    except ConfigError as exc:
        raise UnusableInput(str(exc)) from None
    text = dumps(plan)
    try:
        verdict = run_gate(
            parse_plan(plan),
            text,
            engines=engines,
            exceptions_path=options.exceptions_path or DEFAULT_PATH,
            today=options.today,
            stack=stack,
            stack_root=staged_root,
        )
    except (ConfigError, ExceptionsFileError, PlanError) as exc:  # stack config, exceptions file, plan shape
        raise UnusableInput(str(exc)) from None
    blocking = [
        {"engine": j.result.engine, "rule": j.result.rule_id, "resource": j.result.urn, "message": j.result.message}
        for j in verdict.blocking()
    ]
    waivers = len(verdict.waivers_in_force)
    declared = frozenset(
        str(name)
        for step in plan["steps"]
        for name in [(step["newState"].get("inputs") or {}).get("name")]
        if isinstance(name, str)
    )
    result = GateResult(verdict.passed, verdict.plan_hash, engines, blocking, waivers, declared)
    if not result.passed:
        rules = sorted({b["rule"] for b in blocking})
        raise GateFailed(
            f"the policy gate failed on the pinned configuration of {stack} ({len(blocking)} blocking finding(s): "
            f"{', '.join(rules)}); the stack file was not changed. Fix: `clinops gate {stack}` shows each finding",
            {"gate": result.as_evidence()},
        )
    return result
