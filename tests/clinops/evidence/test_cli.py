"""`clinops evidence verify|show` through typer's CliRunner: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner, Result

from clinops.cli.evidence import app
from clinops.evidence import EvidenceLog
from tests.clinops.evidence.helpers import (
    CI,
    MODEL,
    entry_path,
    filled_log,
    overwrite,
    read_entry,
    remove,
    stepping_clock,
)

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})  # a wide table; report lines never wrap anyway


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    filled_log(tmp_path / "evidence")
    return tmp_path / "evidence"


def test_verify_intact_log_exits_0(log_dir: Path) -> None:
    result = run("verify", "--log", str(log_dir))
    assert result.exit_code == 0, result.output
    assert "INTACT" in result.output and "entries:      6, head 5:" in result.output


def test_verify_lists_each_problem_with_its_seq_and_exits_1(log_dir: Path) -> None:
    remove(entry_path(log_dir, 1))
    overwrite(entry_path(log_dir, 3), entry_path(log_dir, 3).read_bytes().replace(b"PSI", b"psi"))
    result = run("verify", "--log", str(log_dir))
    assert result.exit_code == 1
    assert "TAMPERED: 2 problem(s)" in result.output
    assert "seq 1: missing: no entry: removed" in result.output
    assert "seq 3: altered:" in result.output


def test_an_unparseable_entry_is_tampering_not_unusable_input(log_dir: Path) -> None:
    overwrite(entry_path(log_dir, 2), b"{ not json")
    result = run("verify", "--log", str(log_dir))
    assert result.exit_code == 1
    assert "seq 2: unreadable: not JSON" in result.output


def test_verify_catches_a_truncated_tail_from_the_published_head(log_dir: Path) -> None:
    anchor = read_entry(log_dir, 5).anchor
    remove(entry_path(log_dir, 5))
    result = run("verify", "--log", str(log_dir))  # no anchor given by hand
    assert result.exit_code == 1
    assert "seq 5: truncated: the log ends at seq 4 but the anchor records seq 5" in result.output
    assert f"published:    {anchor}" in result.output
    assert run("verify", "--log", str(log_dir), "--expected-head", str(anchor)).exit_code == 1


def test_verify_needs_the_key_the_log_was_sealed_with(log_dir: Path, tmp_path: Path) -> None:
    missing = run("verify", "--log", str(log_dir), "--mac-key-file", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "no evidence MAC key file" in missing.output
    other = tmp_path / "other.mac-key"
    other.write_text("ab" * 32)
    result = run("verify", "--log", str(log_dir), "--mac-key-file", str(other))
    assert result.exit_code == 1 and "seq 0: bad-mac:" in result.output


def test_verify_json_report(log_dir: Path) -> None:
    result = run("verify", "--log", str(log_dir), "--json", "--expected-head", str(read_entry(log_dir, 5).anchor))
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["ok"] is True and report["entries"] == 6 and report["problems"] == []
    assert report["head"] == report["expected_head"] == read_entry(log_dir, 5).anchor.model_dump()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--log", "missing-dir"], "no evidence log here"),
        (["verify", "--log", "x", "--s3", "s3://b/p", "--stack", "prod"], "not both"),
        (["verify", "--s3", "s3://b/p"], "--s3 needs --stack"),
        (["verify", "--s3", "s3://b/p", "--stack", "prod"], "--s3 needs --mac-key"),
        (["verify", "--s3", "b/p", "--stack", "prod"], "not an S3 location"),
        (["verify", "--expected-head", "5:xyz"], "not an anchor"),
        (["show", "--model", MODEL, "--log", "missing-dir"], "no evidence log here"),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_default_log_is_out_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("verify").exit_code == 2  # no out/evidence here yet
    filled_log(tmp_path / "out" / "evidence")
    assert run("verify").exit_code == 0


def test_show_prints_a_model_versions_history_in_order(log_dir: Path) -> None:
    result = run("show", "--log", str(log_dir), "--model", MODEL, "--version", "3")
    assert result.exit_code == 0, result.output
    assert f"evidence for {MODEL} version 3 (4 entries)" in result.output
    kinds = [k for k in ("approval", "release", "verification", "rollback") if k in result.output]
    assert kinds == ["approval", "release", "verification", "rollback"]
    assert result.output.index("approval") < result.output.index("release") < result.output.index("rollback")
    assert "policy gate on the prod plan" not in result.output  # the gate entry names no version
    assert "sepsis-warning" not in result.output


def test_show_without_version_and_for_an_unknown_model(log_dir: Path) -> None:
    assert "(5 entries)" in run("show", "--log", str(log_dir), "--model", MODEL).output
    result = run("show", "--log", str(log_dir), "--model", "no-such-model")
    assert result.exit_code == 0 and "no evidence for no-such-model" in result.output


def test_show_prints_evidence_text_literally(tmp_path: Path) -> None:
    log = EvidenceLog.local(tmp_path, "prod", clock=stepping_clock())
    log.append("drill", model=MODEL, actor=CI, reason="drill [bold]not markup[/bold]")
    result = run("show", "--log", str(tmp_path), "--model", MODEL)
    assert "drill [bold]not markup[/bold]" in result.output


def test_show_warns_and_exits_1_when_the_log_does_not_verify(log_dir: Path) -> None:
    overwrite(entry_path(log_dir, 2), entry_path(log_dir, 2).read_bytes().replace(b"of v3", b"of v4"))
    result = run("show", "--log", str(log_dir), "--model", MODEL, "--version", "3")
    assert result.exit_code == 1
    assert "(3 entries)" in result.output  # the altered release is not shown as evidence
    assert "the log does not verify (1 problem(s))" in result.output


def test_verify_and_show_against_s3() -> None:
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="clinops-evidence", ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket="clinops-evidence",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2190}},
            },
        )
        log = EvidenceLog.s3("clinops-evidence", "evidence", "prod", kms_key_id=key_id, mac_key_id=mac_key, client=s3)
        log.append("approval", model=MODEL, model_version=3, actor=CI, reason="board approved v3")
        location = ["--s3", "s3://clinops-evidence/evidence", "--stack", "prod", "--mac-key", mac_key]
        verified = run("verify", *location)
        assert verified.exit_code == 0, verified.output
        assert "s3://clinops-evidence/evidence/prod/" in verified.output
        assert '"Mode": "COMPLIANCE"' in verified.output
        shown = run("show", *location, "--model", MODEL)
        assert shown.exit_code == 0 and "board approved v3" in shown.output
        assert "published:    0:" in verified.output  # the head came from the SSM parameter
        assert (
            run("verify", "--s3", "s3://no-such-bucket/evidence", "--stack", "prod", "--mac-key", mac_key).exit_code
            == 2
        )


def test_the_app_works_mounted_as_a_sub_command(log_dir: Path) -> None:
    import typer

    parent = typer.Typer()
    parent.add_typer(app, name="evidence")
    result = runner.invoke(parent, ["evidence", "verify", "--log", str(log_dir)])
    assert result.exit_code == 0 and "INTACT" in result.output
    assert "verify" in runner.invoke(parent, ["evidence"]).output  # no arguments: help, listing the commands
