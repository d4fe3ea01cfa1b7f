"""The project's own policy rules. Importing this package never starts a policy pack (only __main__ does)."""

from __future__ import annotations

from policies.rules import access, api, audit, deployment, encryption, network, resources, sagemaker, slo, transmission
from policies.rules.base import Rule

ALL_RULES: tuple[Rule, ...] = (
    *network.RULES,
    *encryption.RULES,
    *transmission.RULES,
    *audit.RULES,
    *access.RULES,
    *sagemaker.RULES,
    *deployment.RULES,
    *resources.RULES,
    *api.RULES,
    *slo.RULES,
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in ALL_RULES}
if len(RULES_BY_ID) != len(ALL_RULES):  # CrossGuard policy names must be unique within a pack
    raise RuntimeError("duplicate rule ids in policies.rules")

__all__ = ["ALL_RULES", "RULES_BY_ID", "Rule"]
