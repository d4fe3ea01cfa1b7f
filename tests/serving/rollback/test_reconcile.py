"""The pin follows the rollback: `clinops rollback reconcile` rewrites the stack file (the release code's pin
editor) and `--check` fails a deploy that would silently undo a rollback. moto endpoints, a real stack file copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import EndpointConnectionError
from typer.testing import CliRunner

from clinops.cli import rollback as cli
from clinops.config import load_from_stack_file
from clinops.evidence import EvidenceLog
from serving.guardrails.breaker import handle_alarm_event, rollback_request
from serving.guardrails.state import SsmStateStore
from tests.serving.conftest import ENDPOINT, MODEL, STACK, World, alarm_event, config, package, stack_root

OPERATOR = "arn:aws:sts::333333333333:assumed-role/sre/oncall"


@pytest.fixture
def project(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        cli, "open_clients", lambda config: cli.StackClients(world.sagemaker, world.ssm, world.cloudwatch, OPERATOR)
    )
    monkeypatch.setattr(cli, "clock", world.clock)
    return stack_root(tmp_path)


def invoke(root: Path, tmp_path: Path, *args: str) -> Any:
    base = ["reconcile", "--stack", STACK, "--evidence", str(tmp_path / "ev"), "--root", str(root)]
    return CliRunner().invoke(cli.rollback_app, [*base, *args])


def pins(root: Path) -> dict[str, Any]:
    doc = yaml.safe_load((root / "Pulumi.prod.yaml").read_text())
    return next(m for m in doc["config"]["clinops:models"] if m["name"] == MODEL)


def evidence(tmp_path: Path) -> list[Any]:
    return EvidenceLog.local(tmp_path / "ev" / STACK, STACK).entries()


def breaker_rolls_back(world: World) -> None:
    world.sagemaker.expect_update(rollback_request(ENDPOINT, config(3), 1800))
    handle_alarm_event(alarm_event("e-1"), world.clients(), SsmStateStore(world.ssm), world.clock, world.settings)


def test_check_passes_while_the_endpoint_serves_its_pin(project: Path, tmp_path: Path) -> None:
    result = invoke(project, tmp_path, "--check")
    assert result.exit_code == 0, result.output
    assert f"ok  {MODEL}: {ENDPOINT} serves the pinned {config(4)}" in result.output


def test_after_a_rollback_check_fails_with_the_exact_command_and_reconcile_makes_the_pin_follow(
    world: World, project: Path, tmp_path: Path
) -> None:
    breaker_rolls_back(world)
    before = (project / "Pulumi.prod.yaml").read_text()

    check = invoke(project, tmp_path, "--check")
    assert check.exit_code == 1
    assert f"Run `clinops rollback reconcile --stack {STACK} --model {MODEL}`" in check.output
    assert (project / "Pulumi.prod.yaml").read_text() == before  # a check never edits

    done = invoke(project, tmp_path, "--model", MODEL)
    assert done.exit_code == 0, done.output
    entry = pins(project)
    assert entry["packageArn"] == package(3) and "lastKnownGoodPackageArn" not in entry
    text = (project / "Pulumi.prod.yaml").read_text()
    assert text.startswith("# prod: patients depend on it.")  # comments and layout kept
    assert load_from_stack_file(STACK, project).models[0].package_arn == package(3)
    [change] = evidence(tmp_path)
    assert str(change.kind) == "pin-change" and change.actor == OPERATOR and change.package_arn == package(3)
    assert change.details["rolled_back_by"] == "circuit-breaker"
    assert change.details["breaker_event_id"] == "e-1" and change.details["from_package_arn"] == package(4)
    assert change.details["breaker_phase"] == "landed" and change.details["breaker_alarm"] == f"{ENDPOINT}-drift"

    assert invoke(project, tmp_path, "--check").exit_code == 0  # the next deploy may proceed: nothing to undo


def test_reconcile_with_nothing_to_follow_changes_nothing(project: Path, tmp_path: Path) -> None:
    before = (project / "Pulumi.prod.yaml").read_text()
    result = invoke(project, tmp_path, "--model", MODEL)
    assert result.exit_code == 0 and "serves the pinned" in result.output
    assert (project / "Pulumi.prod.yaml").read_text() == before and evidence(tmp_path) == []


def test_an_endpoint_on_an_unknown_configuration_is_refused(world: World, project: Path, tmp_path: Path) -> None:
    world.add_config(2)
    world.serve(config(2))
    check = invoke(project, tmp_path, "--check")
    assert check.exit_code == 1 and "neither the pinned" in check.output
    refused = invoke(project, tmp_path, "--model", MODEL)
    assert refused.exit_code == 2 and "investigate" in refused.output
    assert pins(project)["packageArn"] == package(4)


def test_mid_deployment_check_fails_rather_than_guess(world: World, project: Path, tmp_path: Path) -> None:
    world.sagemaker.queue_describe("Updating", 4)
    check = invoke(project, tmp_path, "--check", "--model", MODEL)
    assert check.exit_code == 1 and "is Updating: wait" in check.output


def test_restoring_the_pin_over_a_rollback_is_a_recorded_decision(world: World, project: Path, tmp_path: Path) -> None:
    breaker_rolls_back(world)
    too_short = invoke(project, tmp_path, "--check", "--restore-reason", "drill")
    assert too_short.exit_code == 2 and evidence(tmp_path) == []
    result = invoke(project, tmp_path, "--check", "--restore-reason", "quarterly drill DR-2026-Q1 is over")
    assert result.exit_code == 0, result.output
    [entry] = evidence(tmp_path)
    assert entry.details["change"] == "restore-pin-over-rollback" and "DR-2026-Q1" in entry.reason
    assert pins(project)["packageArn"] == package(4)  # the pin stays; `pulumi up --refresh` redeploys it


def test_a_pin_change_that_cannot_be_recorded_is_undone(
    world: World, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unwritable:
        def append(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("read-only evidence store")

    breaker_rolls_back(world)
    before = (project / "Pulumi.prod.yaml").read_text()
    monkeypatch.setattr(cli, "open_evidence", lambda spec, stack: Unwritable())
    result = invoke(project, tmp_path, "--model", MODEL)
    assert result.exit_code == 2 and "could not be recorded" in result.output
    assert (project / "Pulumi.prod.yaml").read_text() == before


def test_check_fails_while_a_breaker_rollback_is_interrupted_so_a_deploy_cannot_race_its_recovery(
    world: World, project: Path, tmp_path: Path
) -> None:
    world.sagemaker.lose_update(EndpointConnectionError(endpoint_url="https://sagemaker"))
    handle_alarm_event(alarm_event("e-1"), world.clients(), SsmStateStore(world.ssm), world.clock, world.settings)
    check = invoke(project, tmp_path, "--check")
    assert check.exit_code == 1 and "rollback of" in check.output and "is requested" in check.output
