"""Run the CrossGuard rules offline: a plan file in, an `EngineReport` out, through the very functions that
`pulumi preview --policy-pack policies` runs.

The plan's resources become `pulumi_policy.PolicyResource` objects (parent, dependencies and property
dependencies resolved to objects, props behind CrossGuard's unknown-checking proxy), each rule gets
`StackValidationArgs` with the policy config CrossGuard would give it, and every `report_violation` call is
recorded. Results: one per (rule, resource of the rule's types), failed where a violation named it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy
from pydantic import ValidationError

from clinops.config import ENVIRONMENTS, RETENTION_FLOORS, StackConfig
from clinops.models import SLO_DEFAULTS, Slo, SloOverrides
from policies.model import CheckResult, EngineReport
from policies.plan import STACK_TYPE, Plan, PlanResource
from policies.rules import ALL_RULES, Rule
from policies.rules.base import ACCEPTED, CONFIG_SCHEMA, NotKnownAtPreview, shared_caches

ENGINE = "clinops"
CONFIG_DIR = Path(__file__).parent / "config"


def _facts(
    environment: Any,
    classification: Any,
    rollback_slo: Any,
    region: Any,
    accounts: Any = (),
    slo_models: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Platform facts; anything missing or malformed falls back to the strictest default."""
    defaults = {key: schema["default"] for key, schema in CONFIG_SCHEMA.items()}
    floors = RETENTION_FLOORS.get(str(classification), RETENTION_FLOORS["phi"])
    try:
        slo = int(rollback_slo)
    except (TypeError, ValueError):
        slo = defaults["rollbackSloSeconds"]
    return {
        **defaults,
        "environment": environment if environment in ENVIRONMENTS else defaults["environment"],
        "logRetentionFloorDays": floors["log"],
        "evidenceRetentionFloorDays": floors["evidence"],
        "rollbackSloSeconds": slo,
        "region": region if isinstance(region, str) else "",
        "platformAccounts": sorted({str(a) for a in accounts if isinstance(a, str | int) and str(a).isdigit()}),
        "sloModels": slo_models or [],
    }


def _slo_fact(name: str, slo: Slo) -> dict[str, Any]:
    return {
        "name": name,
        "windowDays": slo.window_days,
        "errorBudget": slo.error_budget,
        "costPer1000Usd": slo.cost_per_1000_usd,
        "exhaustedAction": slo.exhausted_action,
    }


def _slo_models_from_plan(values: dict[str, Any], environment: Any) -> list[dict[str, Any]]:
    """Served models and their SLOs from the config a bare plan carries: each field the config gives that
    validates, the environment's defaults (prod's when the environment is unknown) for the rest."""
    defaults = SLO_DEFAULTS.get(str(environment), SLO_DEFAULTS["prod"])
    facts = []
    for model in values.get("models") or []:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model.get("packageArn"):
            continue
        layers = [defaults]
        for given in (values.get("slo"), model.get("slo")):
            try:
                layers.append(SloOverrides.model_validate(given or {}).given())
            except ValidationError:
                continue
        facts.append(_slo_fact(model["name"], Slo.model_validate({k: v for layer in layers for k, v in layer.items()})))
    return facts


def _per_rule(facts: Mapping[str, Any], rules: Sequence[Rule] = ALL_RULES) -> dict[str, dict[str, Any]]:
    """CrossGuard configures each policy separately: give each rule the facts it declares it reads."""
    return {r.id: {key: facts[key] for key in r.config_keys} for r in rules if r.config_keys}


def policy_config_for(stack_config: StackConfig) -> dict[str, dict[str, Any]]:
    """The `--policy-pack-config` document for a stack (what `policies/config/<stack>.json` holds)."""
    facts = _facts(
        stack_config.environment,
        stack_config.tags.data_classification,
        stack_config.rollback_slo_seconds,
        stack_config.region,
        [stack_config.account_id, *stack_config.accounts.model_dump().values()],
        [_slo_fact(m.name, stack_config.slo_for(m)) for m in stack_config.models if m.package_arn],
    )
    return _per_rule(facts)


def policy_config_from_plan(plan: Plan) -> dict[str, dict[str, Any]]:
    """The same document, derived from the stack config a plan carries (no validation: secure defaults)."""
    values = plan.platform_config()
    tags = raw_tags if isinstance(raw_tags := values.get("tags"), dict) else {}
    accounts = raw_accounts if isinstance(raw_accounts := values.get("accounts"), dict) else {}
    facts = _facts(
        values.get("environment"),
        tags.get("dataClassification"),
        values.get("rollbackSloSeconds"),
        plan.config.get("aws:region"),
        [values.get("accountId"), *accounts.values()],
        _slo_models_from_plan(values, values.get("environment")),
    )
    return _per_rule(facts)


def write_policy_configs(stacks: Sequence[str] = ENVIRONMENTS, root: Path | None = None) -> list[Path]:
    """Regenerate `policies/config/<stack>.json` from the stack files (run after changing a stack file)."""
    from clinops.config import load_from_stack_file

    written = []
    for stack in stacks:
        path = CONFIG_DIR / f"{stack}.json"
        config = policy_config_for(load_from_stack_file(stack, root))
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def policy_resources(plan: Plan) -> list[PolicyResource]:
    """The plan as CrossGuard presents a stack to a stack validation."""

    def options(r: PlanResource) -> PolicyResourceOptions:
        return PolicyResourceOptions(r.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)

    resources = {
        r.urn: PolicyResource(r.type, unknown_checking_proxy(r.inputs), r.urn, r.name, options(r), None, None, [], {})
        for r in plan.resources
    }
    for r in plan.resources:
        resource = resources[r.urn]
        resource.parent = resources.get(r.parent)
        resource.retain_on_delete = r.retain_on_delete  # type: ignore[attr-defined]  # CrossGuard does not carry it
        resource.dependencies = [resources[u] for u in r.dependencies if u in resources]
        resource.property_dependencies = {
            prop: [resources[u] for u in urns if u in resources] for prop, urns in r.property_dependencies.items()
        }
    return [resources[urn] for urn in sorted(resources)]


def _run(rule: Rule, args: StackValidationArgs, stack_urn: str) -> dict[str, list[str]]:
    """Violations of one rule, by URN (stack-level ones on the stack URN)."""
    violations: dict[str, list[str]] = defaultdict(list)

    def report_violation(message: str, urn: str | None = None) -> None:
        violations[urn or stack_urn].append(message)

    try:
        outcome = rule.validate(args, report_violation)
        if inspect.isawaitable(outcome):
            asyncio.run(_await(outcome))
    except NotKnownAtPreview as exc:
        # Offline there is no later `pulumi up` run to judge these: what cannot be verified fails.
        for urn, path in exc.unknowns:
            violations[urn].append(f"{path} is unknown until apply, so it cannot be verified")
    except UnknownValueError as exc:
        violations[stack_urn].append(f"cannot be verified: {exc.message}")
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        # A rule that meets an input of a shape it does not expect has not shown compliance: fail closed.
        violations[stack_urn].append(
            f"cannot be verified: an input has an unexpected shape ({type(exc).__name__}: {exc})"
        )
    return violations


def _run_collecting(
    rule: Rule, resources: list[PolicyResource], config: dict[str, Any], stack_urn: str
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """A rule's violations and what it accepted by design, both by URN."""
    accepted: dict[str, list[str]] = {}
    token = ACCEPTED.set(accepted)
    try:
        return _run(rule, StackValidationArgs(resources, config=config.get(rule.id, {})), stack_urn), accepted
    finally:
        ACCEPTED.reset(token)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def evaluate(plan: Plan, rules: Sequence[Rule] = ALL_RULES) -> EngineReport:
    started = time.perf_counter()
    resources = policy_resources(plan)
    types = {r.urn: r.resource_type for r in resources}
    stack_urn = plan.stack_urn()
    types.setdefault(stack_urn, STACK_TYPE)
    # The gate binds the stack's own config; a bare plan (CrossGuard-style tests) falls back to what it carries.
    config = policy_config_for(plan.stack_config) if plan.stack_config else policy_config_from_plan(plan)
    results: list[CheckResult] = []
    with shared_caches(resources):
        judged_by_rule = [(rule, *_run_collecting(rule, resources, config, stack_urn)) for rule in rules]
    for rule, violations, accepted in judged_by_rule:
        judged = {r.urn for r in resources if r.resource_type in rule.resource_types} | set(violations)
        for urn in judged:
            messages = list(dict.fromkeys(violations.get(urn, [])))
            results.append(
                CheckResult(
                    engine=ENGINE,
                    rule_id=rule.id,
                    title=rule.title,
                    severity=rule.severity,
                    controls=rule.controls,
                    urn=urn,
                    resource_type=types.get(urn, ""),
                    status="failed" if messages else "passed",
                    # what the rule accepted by design (Findings.accept) is said too, so the evidence shows it; only
                    # the violations are `details` (what an exception must name)
                    message="; ".join([*messages, *(f"accepted: {m}" for m in dict.fromkeys(accepted.get(urn, [])))]),
                    fix=rule.fix if messages else "",
                    mandatory=rule.mandatory,
                    details=tuple(messages),
                )
            )
    judged_types = {t for rule in rules for t in (*rule.resource_types, *rule.reads)}
    coverage = {
        r.type: "seen" if r.type in judged_types else "unseen"
        for r in plan.resources
        if r.custom and not r.type.startswith("pulumi:providers:")
    }
    facts = {key: value for entry in config.values() for key, value in entry.items()}
    return EngineReport(
        engine=ENGINE,
        results=sorted(results, key=CheckResult.sort_key),
        coverage=dict(sorted(coverage.items())),
        seconds=round(time.perf_counter() - started, 3),
        notes=[f"policy config: {json.dumps(facts, sort_keys=True)}"],
    )
