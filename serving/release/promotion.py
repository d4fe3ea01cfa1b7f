"""Promotion order: dev -> staging -> prod, proven from evidence rather than trusted from the caller.

- dev: any approved package (dev runs on synthetic data; it is where a package first proves it deploys).
- staging: the same package passed `clinops verify` in a dev stack. We require it rather than allow direct
  staging releases because dev is where the container, alarms and capture first meet a real endpoint; a
  package that never ran there would meet them for the first time on PHI.
- prod: the same package passed `clinops verify` in a staging stack; and a canary release (not `--shadow`)
  also needs a passing `clinops shadow report` for that package in this prod stack, as clinical governance
  asks to see the candidate on real traffic before it answers for patients.
"Passed" means the newest such entry for the package passed: a later failed verification revokes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinops.config import ENVIRONMENTS, ConfigError, StackConfig, load_from_stack_file
from clinops.exitcodes import PromotionOrder
from serving.release.evidence import CHECK_DEPLOYMENT, CHECK_SHADOW, EvidenceLocation, latest, passed, trusted_history


def stacks_of(environment: str, root: Path) -> list[str]:
    """Stacks in this project whose config says `environment` (stack names need not equal environments)."""
    found = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        try:
            if load_from_stack_file(stack, root).environment == environment:
                found.append(stack)
        except ConfigError:
            continue  # an invalid stack file cannot have verified anything
    return found


def _reference(stack: str, entry: Any) -> dict[str, Any]:
    return {"stack": stack, "seq": entry.seq, "hash": entry.hash, "at": entry.at.isoformat()}


def check_promotion(
    config: StackConfig, model: str, package_arn: str, *, shadow: bool, evidence: EvidenceLocation, root: Path
) -> dict[str, Any]:
    """Raise PromotionOrder unless the package may go to this stack now; return the proof for the evidence."""
    environment = config.environment
    proof: dict[str, Any] = {"environment": environment}
    position = ENVIRONMENTS.index(environment)
    if position > 0:
        previous = ENVIRONMENTS[position - 1]
        stacks = stacks_of(previous, root)
        found = None
        for stack in stacks:
            entry = latest(trusted_history(evidence.log(stack), model), CHECK_DEPLOYMENT, package_arn)
            if passed(entry):
                found = _reference(stack, entry)
                break
        if found is None:
            where = ", ".join(stacks) or f"no {previous} stack in this project"
            raise PromotionOrder(
                f"{package_arn} has no passing verification in {previous} ({where}); a {environment} release "
                f"needs one. Fix: release it to {previous}, then `clinops verify` there",
                {"environment": environment, "required": f"verification in {previous}"},
            )
        proof["verified_in"] = found
    if environment == "prod" and not shadow:
        entry = latest(trusted_history(evidence.log(config.stack), model), CHECK_SHADOW, package_arn)
        if not passed(entry):
            state = "none" if entry is None else f"the latest ({entry.at:%Y-%m-%d}) did not pass"
            raise PromotionOrder(
                f"a prod canary of {package_arn} needs a passing shadow report in {config.stack} ({state}). "
                "Fix: `clinops release --shadow`, let it see traffic, then `clinops shadow report`",
                {"environment": environment, "required": "passing shadow report"},
            )
        proof["shadow_report"] = _reference(config.stack, entry)
    return proof
