"""The CrossGuard pack: importable without starting the analyzer, and built from the same rules."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from typing import Any

import pulumi_policy
import pytest
import yaml
from pulumi_policy import EnforcementLevel, StackValidationPolicy

from policies.controls import TITLES
from policies.model import SEVERITY_ORDER
from policies.rules import ALL_RULES, Rule
from policies.rules.base import CONFIG_SCHEMA
from tests.conftest import REPO

PACK_DIR = REPO / "policies"


def test_importing_the_rules_never_constructs_a_policy_pack() -> None:
    # A fresh interpreter, so the imports below really run; PolicyPack would start a gRPC server and block.
    probe = """
import sys, pulumi_policy
def refuse(*args, **kwargs):
    raise SystemExit("PolicyPack constructed on import")
pulumi_policy.PolicyPack = refuse
import policies.crossguard, policies.pack, policies.rules
from tests.conftest import REPO
assert len(policies.pack.stack_policies()) == len(policies.rules.ALL_RULES)
assert "policies.__main__" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=PACK_DIR.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.id)
def test_rule_metadata(rule: Rule) -> None:
    assert re.fullmatch(r"CLIN-[A-Z]{2,3}-\d{3}", rule.id)
    assert rule.controls and all(c in TITLES for c in rule.controls)
    assert rule.severity in SEVERITY_ORDER
    assert rule.fix.endswith(".") and len(rule.fix) > 20 and rule.fix == " ".join(rule.fix.split())
    assert rule.title and rule.resource_types
    assert set(rule.config_keys) <= set(CONFIG_SCHEMA)
    assert callable(rule.validate)


def test_policies_mirror_the_rules() -> None:
    from policies.pack import stack_policies

    policies = stack_policies()
    assert [p.name for p in policies] == [r.id for r in ALL_RULES]
    for policy, rule in zip(policies, ALL_RULES, strict=True):
        assert isinstance(policy, StackValidationPolicy)
        assert policy.enforcement_level == (EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY)
        assert policy.severity is not None and policy.severity.value == rule.severity
        assert policy.remediation_steps == rule.fix
        schema = policy.config_schema.properties if policy.config_schema else {}
        assert set(schema) == set(rule.config_keys)
        assert all("default" in spec for spec in schema.values())  # a pack run without config stays strict


def test_main_builds_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}

    def record(name: str, **kwargs: Any) -> None:
        built.update(kwargs, name=name)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", record)
    monkeypatch.setattr(sys, "path", [str(PACK_DIR), *sys.path])  # as Pulumi runs it: from inside policies/
    runpy.run_path(str(PACK_DIR / "__main__.py"), run_name="__main__")
    assert built["name"] == "clinops-hipaa"
    assert built["enforcement_level"] == EnforcementLevel.MANDATORY
    assert [p.name for p in built["policies"]] == [r.id for r in ALL_RULES]
    assert str(PACK_DIR) not in sys.path and str(PACK_DIR.parent) in sys.path


def test_pack_manifest() -> None:
    manifest = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (PACK_DIR / manifest["runtime"]["options"]["virtualenv"]).resolve() == PACK_DIR.parent / ".venv"
    assert "pulumi-policy" in (PACK_DIR / "requirements.txt").read_text()
