"""Mesh validation: a model's contract, derived names and quotas are checked before anything renders; each
problem names the model and the fix, and the CLI exits 2 within seconds."""

from __future__ import annotations

import fnmatch
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinops.cli import app
from clinops.config import ConfigError, load_from_stack_file, validate
from clinops.mesh import EVENT_PATTERN_MAX, check_mesh
from clinops.names import BREAKER_ALARM_SUFFIXES, alarm_name, alarm_state_pattern
from tests.clinops.test_config import prod_values
from tests.conftest import REPO, rendered


def extra_model(name: str, version: int = 1) -> dict:
    return {
        "name": name,
        "description": "a model added to the mesh for this test",
        "packageArn": f"arn:aws:sagemaker:us-east-1:111111111111:model-package/{name}/{version}",
    }


def mesh_problems(config, root: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        check_mesh(config, root)
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_pass(stack: str) -> None:
    check_mesh(load_from_stack_file(stack, REPO))


def test_missing_contract_names_the_model_and_the_fix() -> None:
    values = prod_values()
    values["models"].append(extra_model("discharge-delay"))
    text = mesh_problems(validate("prod", values))
    assert "models[discharge-delay]: no feature contract at pipelines/contracts/discharge-delay.yaml" in text
    assert "Fix: add pipelines/contracts/discharge-delay.yaml" in text


def test_contract_about_another_model_is_refused(tmp_path: Path) -> None:
    contracts = tmp_path / "pipelines" / "contracts"
    contracts.mkdir(parents=True)
    for model in ("readmission-risk", "sepsis-warning"):
        (contracts / f"{model}.yaml").write_text((REPO / "pipelines" / "contracts" / f"{model}.yaml").read_text())
    (contracts / "sepsis-warning.yaml").write_text("name: readmission-risk\n")
    text = mesh_problems(load_from_stack_file("prod", REPO), tmp_path)
    assert "models[sepsis-warning]: pipelines/contracts/sepsis-warning.yaml declares name 'readmission-risk'" in text
    assert "fix: set `name: sepsis-warning`" in text


def test_derived_names_over_aws_limits() -> None:
    values = prod_values()
    long_name = "readmission-risk-at-discharge-30"  # 32 characters: a valid slug
    values["models"].append(extra_model(long_name))
    config = validate("prod-us-east-1-blue", values)  # a long stack name
    text = mesh_problems(config, REPO)
    # clinops-prod-us-east-1-blue-readmission-risk-at-discharge-30-drift-scheduler: 77 > 64
    assert f"models[{long_name}]: the drift scheduler IAM role name" in text and "AWS allows 64" in text
    # clinops-prod-us-east-1-blue-readmission-risk-at-discharge-30-canary: 67 > 64 (Lambda and IAM role)
    assert "canary Lambda function and IAM role" in text
    assert "fix: shorten the model name" in text


def test_batch_scoring_names_are_checked_too() -> None:
    values = prod_values()
    name = "readmission-risk-at-discharge"  # 29 characters: the drift and canary names still fit
    values["models"].append(extra_model(name))
    text = mesh_problems(validate("prod", values), REPO)
    # clinops-prod-readmission-risk-at-discharge-batch-scoring-scheduler: 66 > 64 (and its schedule, 56, fits)
    assert f"models[{name}]: the batch-scoring scheduler IAM role name" in text and "AWS allows 64" in text
    assert "drift scheduler IAM role" not in text and "canary Lambda" not in text


def test_time_to_detect_of_an_outage_fits_the_rollback_slo() -> None:
    # 90% availability over 7 days: the fast tier needs 3.36 x 10% = 33.6% of an hour of errors = 1,209.6 s,
    # + 120 s publishing delay, beyond the 600 s rollback SLO of prod.
    values = prod_values(slo={"availabilityPercent": 90.0, "windowDays": 7, "exhaustedAction": "none"})
    text = mesh_problems(validate("prod", values), REPO)
    assert "models[readmission-risk]: a total outage would page after 1330 s" in text
    assert "fix: a stricter slo.availabilityPercent" in text


def test_event_patterns_do_not_grow_with_the_mesh() -> None:
    values = prod_values()
    values["models"] += [extra_model(f"readmission-risk-{i:02d}") for i in range(48)]
    config = validate("prod", values)
    problems = mesh_problems(config, REPO)  # the extra models have no contracts: only those are reported
    assert "EventBridge" not in problems and problems.count("no feature contract") == 48
    pattern = alarm_state_pattern(["prod"], ("drift",))
    assert len(json.dumps(pattern)) < EVENT_PATTERN_MAX


def test_breaker_rule_matches_every_models_breaker_alarms() -> None:
    rule = next(
        s["newState"]["inputs"]
        for s in rendered("prod")["steps"]
        if s["newState"]["type"] == "aws:cloudwatch/eventRule:EventRule"
        and s["newState"]["inputs"].get("name", "").endswith("circuit-breaker")
    )
    wildcards = [m["wildcard"] for m in json.loads(rule["eventPattern"])["detail"]["alarmName"]]
    for suffix in BREAKER_ALARM_SUFFIXES:
        alarm = alarm_name("prod", "readmission-risk", suffix)
        assert any(fnmatch.fnmatchcase(alarm, w) for w in wildcards), alarm
    assert not any(fnmatch.fnmatchcase(alarm_name("staging", "readmission-risk", "drift"), w) for w in wildcards)


def test_render_refuses_a_model_without_contract_fast(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    text = (REPO / "Pulumi.dev.yaml").read_text()
    text = text.replace(
        "  clinops:models:\n",
        "  clinops:models:\n    - name: discharge-delay\n      description: a model without a contract yet\n",
    )
    (root / "Pulumi.dev.yaml").write_text(text)
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    started = time.perf_counter()
    from infra.render import render

    with pytest.raises(ConfigError, match=r"models\[discharge-delay\]: no feature contract"):
        render("dev", root=root)
    assert time.perf_counter() - started < 5.0


def test_cli_render_exits_2_naming_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clinops.mesh

    monkeypatch.setattr(clinops.mesh, "contract_path", lambda model, root=None: tmp_path / f"{model}.yaml")
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["render", "dev", "--out", str(tmp_path / "dev.json")])
    assert result.exit_code == 2
    assert "models[readmission-risk]: no feature contract" in result.output
    assert not (tmp_path / "dev.json").exists()
    assert time.perf_counter() - started < 5.0
