"""The rules as CrossGuard policies. Building them is cheap; only `PolicyPack(...)` (in __main__) blocks."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    Severity,
    StackValidationPolicy,
)

from policies.controls import TITLES
from policies.rules import ALL_RULES, Rule
from policies.rules.base import CONFIG_SCHEMA

PACK_NAME = "clinops-hipaa"


def stack_policy(rule: Rule) -> StackValidationPolicy:
    schema = PolicyConfigSchema({key: CONFIG_SCHEMA[key] for key in rule.config_keys}) if rule.config_keys else None
    return StackValidationPolicy(
        name=rule.id,
        description=rule.title,
        validate=rule.validate,
        enforcement_level=EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY,
        config_schema=schema,
        severity=Severity(rule.severity),
        framework=PolicyComplianceFramework(
            name="HIPAA Security Rule",
            version="45 CFR Part 164 Subpart C",
            reference=", ".join(f"{c} {TITLES[c]}" for c in rule.controls),
        ),
        tags=["hipaa", *rule.controls],
        remediation_steps=rule.fix,
    )


def stack_policies() -> list[Policy]:  # what PolicyPack takes (its list is invariant); each one a stack policy
    return [stack_policy(rule) for rule in ALL_RULES]
