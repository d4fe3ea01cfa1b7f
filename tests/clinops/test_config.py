"""Bad stack config fails before any resource is declared, naming the key, the value and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clinops.cli import app
from clinops.config import ConfigError, load_from_stack_file, parse_pulumi_values, read_stack_file, validate
from tests.conftest import REPO

ROOT = REPO


def prod_values(**changes: object) -> dict:
    raw, _ = read_stack_file("prod", ROOT)
    values = parse_pulumi_values(raw, "prod")
    values.update(changes)
    return values


def problems(values: dict, stack: str = "prod") -> str:
    with pytest.raises(ConfigError) as exc:
        validate(stack, values)
    return "\n".join(exc.value.problems)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_are_valid(stack: str) -> None:
    config = load_from_stack_file(stack, ROOT)
    assert config.environment == stack
    assert config.models


def test_environments_differ_as_a_hospital_needs() -> None:
    dev, prod = load_from_stack_file("dev", ROOT), load_from_stack_file("prod", ROOT)
    assert (dev.availability_zones, prod.availability_zones) == (2, 3)
    assert prod.evidence_retention_days >= 2190 > dev.evidence_retention_days
    assert prod.retain_on_delete and not dev.retain_on_delete


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        ({"vpcCIDR": "10.0.0.0/16"}, "clinops:vpcCIDR", "unknown key"),
        ({"vpcCidr": "10.0.0.0/33"}, "clinops:vpcCidr", "not an IPv4 network"),
        ({"vpcCidr": "8.8.0.0/16"}, "clinops:vpcCidr", "not a private"),
        ({"vpcCidr": "10.0.0.0/26"}, "clinops:vpcCidr", "/16 to /22"),
        ({"logRetentionDays": 100}, "clinops:logRetentionDays", "not a CloudWatch Logs retention value"),
        ({"logRetentionDays": 90}, "clinops:logRetentionDays", "below the 365-day floor"),
        ({"evidenceRetentionDays": 365}, "clinops:evidenceRetentionDays", "six years"),
        ({"accountId": "12345"}, "clinops:accountId", "12-digit"),
        ({"availabilityZones": 2}, "clinops:availabilityZones", "prod must span 3 AZs"),
        ({"availabilityZones": 5}, "clinops:availabilityZones", "less than or equal to 3"),
        ({"retainOnDelete": False}, "clinops:retainOnDelete", "survive a destroy"),
        ({"principals": {"approvers": []}}, "clinops:principals.approvers", "at least one approver"),
        ({"principals": {"approvers": ["bob"]}}, "clinops:principals.approvers", "not an IAM role"),
        (
            {
                "principals": {
                    "approvers": ["arn:aws:iam::333333333333:role/x"],
                    "authors": ["arn:aws:iam::333333333333:role/x"],
                }
            },
            "clinops:principals",
            "segregation of duties",
        ),
        ({"models": [{"name": "a-b-c", "description": "long enough text"}] * 2}, "clinops:models", "unique"),
        (
            {"models": [{"name": "Bad_Name", "description": "long enough text"}]},
            "clinops:models[Bad_Name].name",
            "slug",
        ),
        (
            {"models": [{"name": "ok-model", "description": "long enough text", "packageArn": "nope"}]},
            "clinops:models[ok-model].packageArn",
            "versioned model package ARN",
        ),
        ({"tags": {"owner": "team"}}, "clinops:tags.dataClassification", "required"),
        ({"region": "mars-1"}, "aws:region", "not an AWS region"),
        ({"imageTag": "1.0.0"}, "clinops:imageTag", "git-<full 40-character commit sha>"),
        ({"imageTag": "git-300e28f"}, "clinops:imageTag", "not an image tag CI builds"),
    ],
)
def test_bad_config_names_key_value_and_fix(change: dict, key: str, fragment: str) -> None:
    text = problems(prod_values(**change))
    assert key in text
    assert fragment in text
    assert "fix" in text or "required" in text or "less than" in text


def test_missing_required_key() -> None:
    values = prod_values()
    del values["vpcCidr"]
    assert "clinops:vpcCidr: required" in problems(values)


def test_cli_render_bad_config_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    doc["config"]["clinops:vpcCidr"] = "10.0.0.0/33"
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setattr("clinops.config.project_root", lambda: tmp_path)
    out = tmp_path / "broken.json"
    result = CliRunner().invoke(app, ["render", "broken", "--out", str(out)])
    assert result.exit_code == 2
    assert "clinops:vpcCidr" in result.output and "10.0.0.0/33" in result.output
    assert not out.exists()


def test_cli_unknown_stack_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", "nosuch", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "Pulumi.nosuch.yaml" in result.output


def test_structured_values_arrive_as_json_strings_like_the_engine_sends() -> None:
    raw, _ = read_stack_file("dev", ROOT)
    assert json.loads(raw["clinops:principals"])["approvers"]
    assert raw["clinops:accountId"] == "111111111111"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_files_read_the_same_with_libyaml_and_without(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinops import config

    assert config.YAML_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    fast = read_stack_file(stack, ROOT)
    monkeypatch.setattr(config, "YAML_LOADER", yaml.SafeLoader)
    assert read_stack_file(stack, ROOT) == fast
