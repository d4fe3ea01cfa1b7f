"""Stack file edits: comments kept, validated before disk, atomic, restorable; the last-known-good rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinops.config import load_from_stack_file
from clinops.exitcodes import UnusableInput
from serving.release.evidence import CHECK_DEPLOYMENT, EvidenceLocation, trusted_history
from serving.release.release import ReleaseRequest, find_model, plan_edit
from serving.release.stackfile import StackFileEdit
from tests.serving.release.helpers import ACTOR, MODEL, package_arn, seed_evidence


def test_pin_keeps_every_comment_and_changes_only_the_pin(project: Path) -> None:
    edit = StackFileEdit("dev", project)
    edit.pin(MODEL, package_arn(4), package_arn(3))
    edit.replace()
    before, after = edit.original.splitlines(), (project / "Pulumi.dev.yaml").read_text().splitlines()
    assert after[0].startswith("# dev: synthetic data only")
    changed = [line for line in after if line not in before]
    assert changed == [f"      packageArn: {package_arn(4)}", f"      lastKnownGoodPackageArn: {package_arn(3)}"]
    assert len(after) == len(before) + 1
    model = find_model(load_from_stack_file("dev", project), MODEL)
    assert (model.package_arn, model.last_known_good_package_arn) == (package_arn(4), package_arn(3))
    edit.restore()
    assert (project / "Pulumi.dev.yaml").read_text() == edit.original


def test_shadow_on_a_model_without_serving_block_creates_it(project: Path) -> None:
    edit = StackFileEdit("dev", project)
    edit.shadow("sepsis-warning", package_arn(2, "sepsis-warning"))
    assert edit.changes == {"serving.shadowPackageArn": {"from": None, "to": package_arn(2, "sepsis-warning")}}
    with edit.staged() as (_, config):
        assert find_model(config, "sepsis-warning").serving.shadow_package_arn == package_arn(2, "sepsis-warning")
    assert (project / "Pulumi.dev.yaml").read_text() == edit.original  # staging never touches the real file


def test_an_invalid_result_is_refused_before_the_file_is_touched(project: Path) -> None:
    edit = StackFileEdit("dev", project)
    edit.pin(MODEL, package_arn(3), package_arn(3))  # lastKnownGood == packageArn is invalid config
    invalid = r"(?s)would be invalid.*lastKnownGoodPackageArn equals packageArn"
    with pytest.raises(UnusableInput, match=invalid), edit.staged():
        pass
    assert (project / "Pulumi.dev.yaml").read_text() == edit.original
    with pytest.raises(UnusableInput, match="has no model 'triage'"):
        edit.pin("triage", package_arn(1, "triage"), None)


def _planned(project: Path, evidence: EvidenceLocation, package: str, stack: str = "prod") -> StackFileEdit:
    config = load_from_stack_file(stack, project)
    edit = StackFileEdit(stack, project)
    plan_edit(config, find_model(config, MODEL), ReleaseRequest(stack, MODEL, package, "r", ACTOR), edit, evidence)
    return edit


def test_previous_pin_becomes_last_known_good_only_once_verified(project: Path, tmp_path: Path) -> None:
    evidence = EvidenceLocation(str(tmp_path / "evidence"))
    # prod pins v2 with v1 as last known good; v2 was never verified in prod: v1 stays the rollback target.
    edit = _planned(project, evidence, package_arn(4))
    assert edit.changes == {"packageArn": {"from": package_arn(2), "to": package_arn(4)}}
    seed_evidence(evidence, "prod", "verification", CHECK_DEPLOYMENT, package_arn(2), passed=True)
    edit = _planned(project, evidence, package_arn(4))
    assert edit.changes["lastKnownGoodPackageArn"] == {"from": package_arn(1), "to": package_arn(2)}
    # A later failed verification revokes it.
    seed_evidence(evidence, "prod", "verification", CHECK_DEPLOYMENT, package_arn(2), passed=False)
    assert "lastKnownGoodPackageArn" not in _planned(project, evidence, package_arn(4)).changes
    assert len(trusted_history(evidence.log("prod"), MODEL)) == 2


def test_releasing_the_last_known_good_clears_it(project: Path, tmp_path: Path) -> None:
    edit = _planned(project, EvidenceLocation(str(tmp_path / "evidence")), package_arn(1))
    assert edit.changes["lastKnownGoodPackageArn"] == {"from": package_arn(1), "to": None}
    with edit.staged() as (_, config):
        assert find_model(config, MODEL).last_known_good_package_arn is None
