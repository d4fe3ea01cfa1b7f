"""The gate's verdict, exceptions, evidence bundle and CLI exit codes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from clinops.cli import app
from infra.render import dumps
from policies.bundle import write_bundle
from policies.exceptions import load
from policies.gate import run_gate
from policies.plan import parse_plan
from tests.conftest import REPO, rendered

ACCESS_LOGS = "*$aws:s3/bucket:Bucket::access-logs"
SARIF_SCHEMA = REPO / "tests" / "data" / "sarif" / "sarif-2.1.0-rtm.5.json"


def exceptions_file(tmp_path: Path, **changes: object) -> Path:
    """One test exception (changed as asked) plus the shipped clinops exceptions that apply to prod."""
    entry = {
        "engine": "clinops",
        "rule": "CLIN-ENC-002",
        "resource": ACCESS_LOGS,
        "reason": "S3 access logs need SSE-S3",
        "owner": "platform",
        "expires": "2099-01-01",
        **changes,
    }
    shipped = yaml.safe_load((REPO / "policies" / "exceptions.yaml").read_text())
    prod_clinops = [e for e in shipped["exceptions"] if e["engine"] == "clinops" and "dev" not in e.get("stacks", [])]
    path = tmp_path / "exceptions.yaml"
    path.write_text(yaml.safe_dump({"exceptions": [entry, *prod_clinops]}, default_flow_style=False))
    return path


def weakened() -> dict:
    """prod with the access-log bucket on SSE-S3: one clinops finding (CLIN-ENC-002) to waive or not."""
    doc = rendered("prod")
    for step in doc["steps"]:
        if step["urn"].endswith("BucketServerSideEncryptionConfiguration::access-logs-encryption"):
            step["newState"]["inputs"]["rules"] = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
            step["newState"]["propertyDependencies"].pop("rules")
    return doc


def gate(doc: dict, exceptions: Path) -> object:
    return run_gate(parse_plan(doc), dumps(doc), engines=["clinops"], exceptions_path=exceptions)


def test_exception_waives_the_finding_and_is_listed(tmp_path: Path) -> None:
    verdict = gate(weakened(), exceptions_file(tmp_path))
    assert verdict.passed
    # the test's own waiver, plus the shipped ones for prod: the evidence HMAC key (KMS cannot rotate it) and
    # the drift pipeline's merge step
    assert sorted(w.rule_id for w in verdict.waivers_in_force) == ["CLIN-ENC-001", "CLIN-ENC-002", "CLIN-SM-002"]
    assert not verdict.unused_waivers


def test_without_the_exception_the_access_log_bucket_fails(tmp_path: Path) -> None:
    verdict = gate(weakened(), exceptions_file(tmp_path, rule="CLIN-NET-999"))
    assert not verdict.passed
    assert [j.result.urn.split("::")[-1] for j in verdict.blocking()] == ["access-logs"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"reason": ""}, "lacks reason"),
        ({"owner": None}, "lacks owner"),
        ({"expires": "2020-01-01"}, "expired on"),
        ({"engine": "trivy"}, "is not one of"),
    ],
)
def test_unaccountable_exception_fails_the_gate(tmp_path: Path, change: dict, fragment: str) -> None:
    verdict = gate(weakened(), exceptions_file(tmp_path, **change))
    assert not verdict.passed
    messages = [j.result.message for j in verdict.blocking()]
    assert any(fragment in m for m in messages), messages


def test_unused_exception_is_reported(tmp_path: Path) -> None:
    verdict = gate(rendered("prod"), exceptions_file(tmp_path, rule="CLIN-NET-999"))
    assert [w.rule_id for w in verdict.unused_waivers] == ["CLIN-NET-999"]


def test_expiry_is_judged_against_today(tmp_path: Path) -> None:
    waivers, problems = load(exceptions_file(tmp_path, expires="2030-06-01"), today=dt.date(2030, 6, 2))
    assert not waivers and "expired on 2030-06-01" in problems[0]


def test_gate_twice_yields_identical_findings(tmp_path: Path) -> None:
    doc, exc = rendered("staging"), exceptions_file(tmp_path)
    first = [j.result.to_json() for j in gate(doc, exc).judged]
    second = [j.result.to_json() for j in gate(doc, exc).judged]
    assert first == second and first


def test_bundle_files_and_sarif_validates(tmp_path: Path) -> None:
    doc = weakened()
    doc["steps"] = [s for s in doc["steps"] if s["newState"]["type"] != "aws:ec2/flowLog:FlowLog"]
    verdict = gate(doc, exceptions_file(tmp_path))
    paths = write_bundle(verdict, tmp_path / "bundle")
    assert sorted(p.name for p in paths) == [
        "findings.json",
        "findings.sarif",
        "junit.xml",
        "plan.sha256",
        "report.html",
        "report.md",
    ]
    sarif = json.loads((tmp_path / "bundle" / "findings.sarif").read_text())
    assert SARIF_SCHEMA.exists(), "run `make venv` to fetch the SARIF schema"
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    errors = [r for run in sarif["runs"] for r in run["results"] if r["level"] == "error"]
    assert errors and errors[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "infra/network.py"
    report = (tmp_path / "bundle" / "report.md").read_text()
    for control in (
        "164.312(a)(1)",
        "164.312(a)(2)(iv)",
        "164.312(b)",
        "164.312(c)(1)",
        "164.312(d)",
        "164.312(e)(1)",
        "164.308(a)(1)(ii)(D)",
    ):
        assert f"§{control}" in report
    assert "S3 access logs need SSE-S3" in report  # exceptions in force are evidence too
    findings = json.loads((tmp_path / "bundle" / "findings.json").read_text())
    assert findings["planHash"] == "sha256:" + (tmp_path / "bundle" / "plan.sha256").read_text().strip()
    assert "<failure" in (tmp_path / "bundle" / "junit.xml").read_text()


def test_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.json"
    good.write_text(dumps(rendered("dev")))
    assert runner.invoke(app, ["gate", "--plan", str(good), "--engine", "clinops"]).exit_code == 0
    broken_doc = rendered("dev")
    for step in broken_doc["steps"]:
        if step["newState"]["type"] == "aws:kms/key:Key":
            step["newState"]["inputs"]["enableKeyRotation"] = False
    broken = tmp_path / "broken.json"
    broken.write_text(dumps(broken_doc))
    result = runner.invoke(app, ["gate", "--plan", str(broken), "--engine", "clinops", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "phi-key" in result.output and (tmp_path / "b" / "findings.sarif").exists()
    assert runner.invoke(app, ["gate", "--plan", str(tmp_path / "missing.json")]).exit_code == 2
    (tmp_path / "junk.json").write_text("{not json")
    unusable = runner.invoke(app, ["gate", "--plan", str(tmp_path / "junk.json")])
    assert unusable.exit_code == 2 and "not JSON" in unusable.output
    assert runner.invoke(app, ["gate", "nosuchstack"]).exit_code == 2
    assert runner.invoke(app, ["gate", "dev", "--engine", "trivy"]).exit_code == 2


def test_shipped_prod_passes_all_three_engines_with_the_reviewed_exceptions() -> None:
    doc = rendered("prod")
    verdict = run_gate(parse_plan(doc), dumps(doc))
    assert verdict.passed, [(j.result.engine, j.result.rule_id, j.result.urn) for j in verdict.blocking()]
    assert {r.engine for r in verdict.reports} == {"clinops", "checkov", "cdk-nag"}
    assert not verdict.unused_waivers, [w.label() for w in verdict.unused_waivers]
    # every exception in force is evidence: owner, reason and expiry travel with the verdict
    assert all(w.reason and w.owner and w.expires for w in verdict.waivers_in_force)
