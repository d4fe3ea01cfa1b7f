"""The offline release-path rehearsal: the happy path end to end through the CLI (and what it leaves for the real
`evidence` and `scorecard` commands), and the faults that must make it fail loudly at the right phase."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clinops.cli import app
from clinops.config import load_from_stack_file
from clinops.evidence import EvidenceLog
from serving.release.scorecard import ScorecardRefused, compute
from serving.rollback.rehearsal import PHASES, Rehearsal, RehearsalOptions, RehearsalResult, RehearsalUnusable
from tests.conftest import REPO

MODEL, STACK = "readmission-risk", "dev"
ENGINES = ("clinops",)  # our rules judge the pinned plan; the full five-engine gate has its own tests
_PLANS: dict[str, dict] = {}


def fake_training_run(out: Path) -> Path:
    """What `clinops pipeline run --local` leaves for a registered run: the decision, the card's registry
    metadata and the model bundle (synthetic placeholders; the rehearsal never unpickles the model)."""
    run = out / "pipeline" / MODEL / "20260101T000000000000Z"
    for part in ("decision", "card", "model"):
        (run / part).mkdir(parents=True)
    (run / "decision" / "decision.json").write_text(json.dumps({"register": True, "verdict": "PendingManualApproval"}))
    metadata = {"auc": "0.793", "brier": "0.105", "max_subgroup_auc_gap": "0.065", "operating_threshold": "0.143"}
    (run / "card" / "card-property.json").write_text(json.dumps({"metadata": metadata}))
    (run / "model" / "baseline.json").write_text(json.dumps({"format_version": 1, "rows": 100, "features": {}}))
    (run / "model" / "metadata.json").write_text(json.dumps({"format_version": 1, "model_name": MODEL}))
    (run / "model" / "contract.yaml").write_text(f"name: {MODEL}\nversion: 1.0.0\n")
    (run / "model" / "model.joblib").write_bytes(b"synthetic placeholder")
    return run


@pytest.fixture(scope="module")
def render_once() -> Iterator[None]:
    """Each distinct staged stack file is rendered once per module (the gate still judges every plan)."""
    import infra.render

    real = infra.render.render

    def render(stack: str, program: Any = None, root: Path | None = None, overrides: Any = None) -> dict:
        if program is not None or overrides or root is None:
            return real(stack, program, root, overrides)
        key = (root / f"Pulumi.{stack}.yaml").read_text()
        if key not in _PLANS:
            _PLANS[key] = real(stack, root=root)
        return copy.deepcopy(_PLANS[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.render, "render", render)
        yield


def rehearse(out: Path, fault: str | None = None) -> RehearsalResult:
    return Rehearsal(RehearsalOptions(out_dir=out, stack=STACK, model=MODEL, engines=ENGINES, fault=fault)).run()


@pytest.fixture(scope="module")
def happy(tmp_path_factory: pytest.TempPathFactory, render_once: None) -> tuple[Path, Any, dict[str, dict[str, str]]]:
    out = tmp_path_factory.mktemp("happy") / "out"
    fake_training_run(out)
    import socket

    dialled: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        loopback = isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback:
            dialled.append(address)
            raise OSError(f"the rehearsal dialled {address}: only loopback is allowed")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        # a user's own AWS settings: hidden from the rehearsal while it runs, and there again afterwards
        patch.setenv("AWS_PROFILE", "someones-real-profile")
        patch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERSOWNKEY00000")
        patch.delenv("MOTO_ACCOUNT_ID", raising=False)
        before = dict(os.environ)
        result = CliRunner().invoke(app, ["rehearse", "--out-dir", str(out), "--engine", "clinops"])
        after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    before.pop("PYTEST_CURRENT_TEST", None)
    assert dialled == []  # nothing beyond loopback (moto runs in process: nothing at all)
    return out, result, {"before": before, "after": after}


def test_the_happy_path_passes_every_phase_through_the_cli(happy: tuple[Path, Any, dict[str, dict[str, str]]]) -> None:
    _, result, _ = happy
    assert result.exit_code == 0, result.output
    for name, title in PHASES:
        assert f" ok  {name}" in result.output and title in result.output
    assert "rehearsal passed: 11 phases" in result.output
    # each phase names the evidence it wrote
    assert "evidence: #2 release (pinned), #3 release (deployed)" in result.output
    assert "evidence: #6 rollback (rolled-back)" in result.output


def test_the_evidence_tells_the_whole_story_and_the_real_commands_read_it(
    happy: tuple[Path, Any, dict[str, dict[str, str]]],
) -> None:
    out, _, _ = happy
    entries = EvidenceLog.local(out / "evidence" / STACK, STACK, create_key=False).entries()
    story = [(e.kind, e.details.get("outcome") or e.details.get("change") or e.details.get("status")) for e in entries]
    assert story == [
        ("verification", None),
        ("approval", "Approved"),
        ("release", "pinned"),
        ("release", "deployed"),
        ("verification", None),
        ("rollback", "rolling-back"),
        ("rollback", "rolled-back"),
        ("pin-change", "reconcile-after-rollback"),
    ]
    approval, release = entries[1], entries[3]
    assert approval.actor != release.actor  # a different identity approves than releases
    assert "clinical-governance" in approval.actor and "ci-release" in release.actor
    runner = CliRunner()
    verified = runner.invoke(app, ["evidence", "verify", "--stack", STACK, "--log", str(out / "evidence")])
    assert verified.exit_code == 0 and "INTACT" in verified.output, verified.output
    shown = runner.invoke(app, ["evidence", "show", "--model", MODEL, "--stack", STACK, "--log", str(out / "evidence")])
    assert shown.exit_code == 0 and "pin-change" in shown.output
    scored = runner.invoke(app, ["scorecard", "--stack", STACK, "--log", str(out / "evidence"), "--json"])
    assert scored.exit_code == 0, scored.output
    card = json.loads(scored.output)
    (promotion,) = card["promotions"]
    (incident,) = card["incidents"]
    assert (promotion["version"], promotion["outcome"]) == ("2", "rolled-back")
    assert promotion["cycle_time_h"] is not None
    assert incident["cause"] == "drift"
    assert incident["time_to_detect_s"] >= 0 and incident["time_to_rollback_s"] >= 0
    assert card["summary"]["rollbacks_by_cause"] == {"drift": 1}


def test_nothing_leaks_and_the_repository_stack_file_is_untouched(
    happy: tuple[Path, Any, dict[str, dict[str, str]]],
) -> None:
    out, _, environ = happy
    assert environ["after"] == environ["before"]  # no fake credential or MOTO_ACCOUNT_ID left, the user's back
    assert environ["after"]["AWS_ACCESS_KEY_ID"] == "AKIAUSERSOWNKEY00000" and "MOTO_ACCOUNT_ID" not in environ["after"]
    repo = load_from_stack_file(STACK, REPO)
    scratch = load_from_stack_file(STACK, out / "rehearsal" / "project")
    rr = next(m for m in scratch.models if m.name == MODEL)
    assert rr.package_arn and rr.package_arn.endswith(f"/{MODEL}/1")  # the pin followed the rollback to v1
    assert rr.last_known_good_package_arn is None
    assert next(m for m in repo.models if m.name == MODEL).package_arn.endswith(f"/{MODEL}/3")


def test_a_second_rehearsal_continues_the_log_with_new_versions(tmp_path: Path, render_once: None) -> None:
    fake_training_run(tmp_path)
    first, second = rehearse(tmp_path), rehearse(tmp_path)
    assert first.ok and second.ok, [p.summary for p in (*first.phases, *second.phases) if not p.ok]
    assert "v4 pinned (last-known-good v3)" in next(p.summary for p in second.phases if p.name == "release")
    card = compute(load_from_stack_file(STACK, REPO), EvidenceLog.local(tmp_path / "evidence" / STACK, STACK))
    assert [p.version for p in card.promotions] == ["2", "4"]


def test_no_verified_last_known_good_makes_the_breaker_refuse(tmp_path: Path, render_once: None) -> None:
    fake_training_run(tmp_path)
    result = rehearse(tmp_path, "unverified-last-known-good")
    assert not result.ok and result.failed_phase == "breaker"
    breaker = result.phases[-1]
    assert "did not roll back (refused: no last-known-good configuration is recorded" in breaker.summary
    assert breaker.evidence == ["#4 rollback (refused)"]  # the refusal itself is evidence
    release = next(p for p in result.phases if p.name == "release")
    assert "NO last-known-good" in release.summary


def test_a_tampered_log_is_refused_by_verify_and_by_the_scorecard(tmp_path: Path, render_once: None) -> None:
    fake_training_run(tmp_path)
    result = rehearse(tmp_path, "tampered-evidence")
    assert [p.name for p in result.phases if not p.ok] == ["evidence", "scorecard"]
    evidence, scorecard = result.phases[-2:]
    assert evidence.summary.startswith("TAMPERED:") and "altered" in evidence.summary
    assert "scorecard refused" in scorecard.summary and "does not verify" in scorecard.summary
    copy_dir = tmp_path / "rehearsal" / "tampered"
    with pytest.raises(ScorecardRefused):
        compute(load_from_stack_file(STACK, REPO), EvidenceLog.local(copy_dir / STACK, STACK, create_key=False))
    refused = CliRunner().invoke(app, ["scorecard", "--stack", STACK, "--log", str(copy_dir)])
    assert refused.exit_code == 1
    # the demo's own log is left intact: only a copy was tampered with
    assert EvidenceLog.local(tmp_path / "evidence" / STACK, STACK, create_key=False).verify().ok


def test_self_approval_is_refused_by_the_release_through_the_cli(tmp_path: Path) -> None:
    fake_training_run(tmp_path)
    result = CliRunner().invoke(
        app, ["rehearse", "--out-dir", str(tmp_path), "--engine", "clinops", "--fault", "self-approval"]
    )
    assert result.exit_code == 1, result.output
    assert "SEGREGATION_OF_DUTIES (exit 4)" in result.output
    assert "REHEARSAL FAILED at phase 'release'" in result.output
    entries = EvidenceLog.local(tmp_path / "evidence" / STACK, STACK, create_key=False).entries()
    assert (entries[-1].kind, entries[-1].details["outcome"], entries[-1].details["exit_code"]) == (
        "release",
        "refused",
        4,
    )


def test_unusable_input_exits_2_before_anything_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["rehearse", "--out-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "clinops pipeline run --local" in missing.output
    fake_training_run(tmp_path)
    unknown = runner.invoke(app, ["rehearse", "--out-dir", str(tmp_path), "--fault", "meteor"])
    assert unknown.exit_code == 2 and "unknown fault 'meteor'" in unknown.output
    with pytest.raises(RehearsalUnusable, match="no model 'nope'"):
        Rehearsal(RehearsalOptions(out_dir=tmp_path, model="nope"))
    assert not (tmp_path / "evidence").exists()


def test_a_log_the_rehearsal_did_not_start_is_never_written_to(tmp_path: Path) -> None:
    """`clinops release` writes OUT/evidence/<stack>/ by default: a real log there must not receive played events."""
    from serving.release.evidence import EvidenceLocation, record

    fake_training_run(tmp_path)
    real = EvidenceLocation(str(tmp_path / "evidence")).log(STACK)
    record(real, "verification", "deployment", model=MODEL, package_arn=None, actor="arn:aws:iam::111111111111:role/x",
           reason="a real verification", details={"passed": True})  # fmt: skip
    result = CliRunner().invoke(app, ["rehearse", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "did not write" in result.output
    assert [e.reason for e in real.entries()] == ["a real verification"]
    assert not (tmp_path / "rehearsal").exists()
