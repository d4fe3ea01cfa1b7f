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
from policies.gate import ENGINES, run_gate
from policies.plan import Plan, parse_plan
from tests.conftest import REPO, rendered

ACCESS_LOGS = "*$aws:s3/bucket:Bucket::access-logs"
SARIF_SCHEMA = REPO / "tests" / "data" / "sarif" / "sarif-2.1.0-rtm.5.json"


def exceptions_file(tmp_path: Path, **changes: object) -> Path:
    """One test exception (changed as asked) plus the shipped clinops exceptions that apply to prod."""
    entry = {
        "engine": "clinops",
        "rule": "CLIN-ENC-002",
        "resource": ACCESS_LOGS,
        "findings": ["bucket 'access-logs' default encryption is AES256, not SSE-KMS"],
        "reason": "S3 access logs need SSE-S3",
        "owner": "platform",
        "expires": (dt.date.today() + dt.timedelta(days=90)).isoformat(),
        **changes,
    }
    shipped = yaml.safe_load((REPO / "policies" / "exceptions.yaml").read_text())
    prod_clinops = [  # the rule waivers; coverage (CLIN-GATE-002) is judged only when every engine runs
        e
        for e in shipped["exceptions"]
        if e["engine"] == "clinops"
        and "dev" not in e.get("stacks", [])
        and e["rule"] != "CLIN-GATE-002"
        and e["resource"] != ACCESS_LOGS  # the shipped access-log waiver is replaced by the test's own entry
    ]
    path = tmp_path / "exceptions.yaml"
    path.write_text(yaml.safe_dump({"exceptions": [entry, *prod_clinops]}, default_flow_style=False))
    return path


def weakened() -> dict:
    """prod with the access-log bucket on SSE-S3 (as shipped): one clinops finding (CLIN-ENC-002) to waive or not."""
    doc = rendered("prod")
    for step in doc["steps"]:
        if step["urn"].endswith("BucketServerSideEncryptionConfiguration::access-logs-encryption"):
            step["newState"]["inputs"]["rules"] = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
            step["newState"]["propertyDependencies"].pop("rules", None)
    return doc


def gate(doc: dict, exceptions: Path) -> object:
    return run_gate(parse_plan(doc), dumps(doc), engines=["clinops"], exceptions_path=exceptions)


def test_exception_waives_the_finding_and_is_listed(tmp_path: Path) -> None:
    verdict = gate(weakened(), exceptions_file(tmp_path))
    assert verdict.passed
    # the test's own waiver, plus the shipped ones for prod: the evidence and CDS encounter HMAC keys (KMS cannot
    # rotate them) and the drift pipeline's merge step
    assert sorted(w.rule_id for w in verdict.waivers_in_force) == [
        "CLIN-ENC-001",
        "CLIN-ENC-001",
        "CLIN-ENC-002",
        "CLIN-SM-002",
    ]
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
        ({"findings": []}, "lacks findings"),
        ({"expires": "2099-01-01"}, "more than 365 days"),
        ({"resource": "*"}, "does not name a resource type"),
        ({"resource": "*$*::access-logs"}, "does not name a resource type"),
        ({"resource": "*$aws:s3/bucket:Bucket::*"}, "may match many resources"),
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
    waivers, problems = load(
        exceptions_file(tmp_path, expires="2030-06-01"), today=dt.date(2030, 6, 2), engines=ENGINES
    )
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
    good = tmp_path / "good-dev.json"
    good.write_text(dumps(rendered("dev")))
    assert runner.invoke(app, ["gate", "--plan", str(good), "--engine", "clinops"]).exit_code == 0
    broken_doc = rendered("dev")
    for step in broken_doc["steps"]:
        if step["newState"]["type"] == "aws:kms/key:Key":
            step["newState"]["inputs"]["enableKeyRotation"] = False
    broken = tmp_path / "broken-dev.json"
    broken.write_text(dumps(broken_doc))
    result = runner.invoke(app, ["gate", "--plan", str(broken), "--engine", "clinops", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "phi-key" in result.output and (tmp_path / "b" / "findings.sarif").exists()
    assert runner.invoke(app, ["gate", "--plan", str(tmp_path / "missing-dev.json")]).exit_code == 2
    (tmp_path / "junk-dev.json").write_text("{not json")
    unusable = runner.invoke(app, ["gate", "--plan", str(tmp_path / "junk-dev.json")])
    assert unusable.exit_code == 2 and "not JSON" in unusable.output
    assert runner.invoke(app, ["gate", "nosuchstack"]).exit_code == 2
    assert runner.invoke(app, ["gate", "dev", "--engine", "trivy"]).exit_code == 2


def test_cli_runs_every_registered_engine_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps no engine list of its own: without --engine it runs what policies.gate.ENGINES holds."""
    import policies.gate
    from policies.model import EngineReport

    def silent(name: str):  # an engine that judges nothing, so the test does not pay for checkov and cdk-nag
        return lambda plans: [EngineReport(engine=name) for _ in plans]

    registry = {name: silent(name) for name in [*policies.gate.ENGINES, "probe"]}
    monkeypatch.setattr(policies.gate, "ENGINES", registry)
    plan = tmp_path / "dev.json"
    plan.write_text(dumps(rendered("dev")))
    result = CliRunner().invoke(app, ["gate", "--plan", str(plan)])
    assert result.exit_code == 0, result.output
    assert all(f"│ {name} " in result.output for name in registry), result.output


def test_shipped_prod_passes_every_engine_with_the_reviewed_exceptions() -> None:
    doc = rendered("prod")
    verdict = run_gate(parse_plan(doc), dumps(doc))
    assert verdict.passed, [(j.result.engine, j.result.rule_id, j.result.urn) for j in verdict.blocking()]
    assert {r.engine for r in verdict.reports} == {"clinops", "checkov", "cdk-nag", "aws-config", "access"}
    assert not verdict.unused_waivers, [w.label() for w in verdict.unused_waivers]
    # every exception in force is evidence: owner, reason and expiry travel with the verdict
    assert all(w.reason and w.owner and w.expires for w in verdict.waivers_in_force)


def _drift_pipeline_without_vpc(doc: dict) -> dict:
    """Every step of the drift pipeline loses its VpcConfig: a new finding of the rule its waiver names."""
    for step in doc["steps"]:
        if step["urn"].endswith("Pipeline::readmission-risk-drift-pipeline"):
            inputs = step["newState"]["inputs"]
            definition = json.loads(inputs["pipelineDefinition"])
            for job in definition["Steps"]:
                args = job.get("Arguments") or {}
                args.pop("VpcConfig", None)
                (args.get("NetworkConfig") or {}).pop("VpcConfig", None)
            inputs["pipelineDefinition"] = json.dumps(definition)
    return doc


def test_isolation_waiver_does_not_absorb_removing_vpc_config() -> None:
    from policies.exceptions import DEFAULT_PATH

    doc = _drift_pipeline_without_vpc(rendered("prod"))
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=["clinops"], exceptions_path=DEFAULT_PATH)
    blocking = [(j.result.rule_id, j.result.urn.split("::")[-1]) for j in verdict.blocking()]
    assert ("CLIN-SM-002", "readmission-risk-drift-pipeline") in blocking
    shipped = run_gate(parse_plan(rendered("prod")), "{}", engines=["clinops"], exceptions_path=DEFAULT_PATH)
    assert shipped.passed  # the reviewed findings alone stay waived


def test_pattern_waiver_beyond_its_count_waives_nothing(tmp_path: Path) -> None:
    doc = weakened()
    reviewed = [
        "bucket 'access-logs' default encryption is AES256, not SSE-KMS",
        "bucket 'data-capture' default encryption is AES256, not SSE-KMS",
    ]
    path = exceptions_file(tmp_path, resource="*$aws:s3/bucket:Bucket::*", maxResources=1, findings=reviewed)
    assert gate(doc, path).passed
    for step in doc["steps"]:  # a second bucket the pattern matches, with the same kind of finding
        if step["urn"].endswith("BucketServerSideEncryptionConfiguration::data-capture-encryption"):
            step["newState"]["inputs"]["rules"] = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
            step["newState"]["propertyDependencies"].pop("rules")
    verdict = gate(doc, path)
    assert not verdict.passed
    blocking = {j.result.urn.split("::")[-1] for j in verdict.blocking()}
    assert {"access-logs", "data-capture"} <= blocking  # the outgrown waiver waives neither
    assert any("more than the 1 reviewed" in j.result.message for j in verdict.blocking())


def test_lifetime_cap_is_configurable(tmp_path: Path) -> None:
    path = exceptions_file(tmp_path)
    waivers, problems = load(path, max_lifetime_days=30, engines=ENGINES)
    assert not problems or "more than 30 days" in problems[0]
    assert "CLIN-ENC-002" not in [w.rule_id for w in waivers]


def _cli(tmp_path: Path, name: str, content: str | bytes, *args: str) -> object:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return CliRunner().invoke(app, ["gate", "--plan", str(path), "--engine", "clinops", *args])


def test_plan_stack_comes_from_outside_the_plan(tmp_path: Path) -> None:
    text = dumps(rendered("prod"))
    assert _cli(tmp_path, "prod.json", text).exit_code == 0  # derived from the file name
    assert _cli(tmp_path, "plan.json", text, "--stack", "prod").exit_code == 0
    unnamed = _cli(tmp_path, "plan.json", text)
    assert unnamed.exit_code == 2 and "pass --stack" in unnamed.output
    ambiguous = _cli(tmp_path, "dev-to-prod.json", text)
    assert ambiguous.exit_code == 2 and "names dev and prod" in ambiguous.output
    other = _cli(tmp_path, "plan.json", text, "--stack", "dev")
    assert other.exit_code == 2 and "for stack 'prod'" in other.output


def test_prod_plan_saying_dev_is_refused(tmp_path: Path) -> None:
    doc = rendered("prod")
    doc["config"]["clinops:environment"] = "dev"
    result = _cli(tmp_path, "prod.json", dumps(doc))
    assert result.exit_code == 2
    assert "clinops:environment is 'dev' in the plan, 'prod' in the stack file" in " ".join(result.output.split())


def test_facts_come_from_the_stack_file_not_the_plan() -> None:
    doc = rendered("prod")
    doc["config"] = {}  # a plan that carries no config is judged by Pulumi.prod.yaml
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=["clinops"])
    notes = " ".join(verdict.reports[0].notes)
    assert '"environment": "prod"' in notes and '"rollbackSloSeconds": 600' in notes


def _first_of(doc: dict, type_: str) -> dict:
    return next(s["newState"] for s in doc["steps"] if s["newState"]["type"] == type_)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("empty", "declares no resources"),
        ("not-utf8", "is not UTF-8 text (byte 0xff"),
        ("inputs-not-object", "newState.inputs is a list, not an object"),
        ("secret-boolean", 'boolean input enableKeyRotation of aws:kms/key:Key is "[secret]"'),
        ("secret-nested-boolean", "boolean input dataCaptureConfig.enableCapture"),
    ],
)
def test_unusable_plan_is_exit_2_with_a_message(tmp_path: Path, case: str, fragment: str) -> None:
    doc = rendered("prod")
    content: str | bytes
    if case == "empty":
        doc["steps"] = []
    elif case == "inputs-not-object":
        _first_of(doc, "aws:kms/key:Key")["inputs"] = ["enableKeyRotation", True]
    elif case == "secret-boolean":
        _first_of(doc, "aws:kms/key:Key")["inputs"]["enableKeyRotation"] = "[secret]"
    elif case == "secret-nested-boolean":
        config = _first_of(doc, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
        config["inputs"]["dataCaptureConfig"]["enableCapture"] = "[secret]"
    content = dumps(doc)
    if case == "not-utf8":
        content = content.encode()[:-2] + b'"\xff"}'
    result = _cli(tmp_path, "prod.json", content)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert fragment in " ".join(result.output.split())


def test_secret_string_input_is_fine() -> None:
    doc = rendered("prod")
    assert any(s["newState"]["inputs"].get("value") == "[secret]" for s in doc["steps"])  # SSM SecureStrings
    parse_plan(doc)


def test_prod_type_nothing_judges_fails_unless_excepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coverage: the other engines are stand-ins that see everything but an Elastic IP, so only a reviewed
    exception could let the unjudged type through."""
    from policies import gate as gate_module
    from policies.exceptions import DEFAULT_PATH
    from policies.model import EngineReport

    doc = rendered("prod")
    eip = json.loads(json.dumps(next(s for s in doc["steps"] if s["newState"]["type"] == "aws:kms/alias:Alias")))
    eip["urn"] = eip["newState"]["urn"] = eip["urn"].rsplit("$", 1)[0] + "$aws:ec2/eip:Eip::stray-eip"
    eip["newState"].update(type="aws:ec2/eip:Eip", inputs={"domain": "vpc"})
    doc["steps"].append(eip)
    plan = parse_plan(doc)
    judged_elsewhere = {r.type: "seen" for r in plan.resources if r.type != "aws:ec2/eip:Eip"}
    for name in gate_module.ENGINES:
        if name != "clinops":
            stand_in = lambda plans, name=name: [EngineReport(name, coverage=judged_elsewhere) for _ in plans]  # noqa: E731
            monkeypatch.setitem(gate_module.ENGINES, name, stand_in)
    verdict = run_gate(plan, dumps(doc), exceptions_path=DEFAULT_PATH)
    blocking = [(j.result.rule_id, j.result.urn.split("::")[-1], j.result.message) for j in verdict.blocking()]
    assert blocking == [("CLIN-GATE-002", "stray-eip", "no engine judges aws:ec2/eip:Eip")]
    partial = run_gate(parse_plan(doc), dumps(doc), engines=["clinops"], exceptions_path=DEFAULT_PATH)
    assert partial.passed  # a partial run cannot tell what nothing judges


def test_findings_on_a_single_check_engine_must_equal_its_message(tmp_path: Path) -> None:
    doc = rendered("prod")
    reviewed = "predicted NON_COMPLIANT: bucket 'access-logs' has no server access logging"
    for findings, waived in (([reviewed], True), (["bucket 'access-logs' is fine"], False)):
        path = tmp_path / "exceptions.yaml"
        entry = {
            "engine": "aws-config",
            "rule": "s3-bucket-logging-enabled",
            "resource": "*$aws:s3/bucket:Bucket::access-logs",
            "findings": findings,
            "reason": "log target",
            "owner": "platform",
            "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
        }
        path.write_text(yaml.safe_dump({"exceptions": [entry]}))
        verdict = run_gate(parse_plan(doc), dumps(doc), engines=["aws-config"], exceptions_path=path)
        logging = [
            j for j in verdict.judged if j.result.rule_id == "s3-bucket-logging-enabled" and j.result.status == "failed"
        ]
        assert [j.waiver is not None for j in logging] == [waived]


def test_odd_nested_input_fails_closed_instead_of_crashing(tmp_path: Path) -> None:
    doc = rendered("prod")
    _first_of(doc, "aws:ec2/securityGroup:SecurityGroup")["inputs"]["ingress"] = ["not a rule"]
    _first_of(doc, "aws:sagemaker/endpoint:Endpoint")["inputs"]["deploymentConfig"] = ["not a config"]
    result = _cli(tmp_path, "prod.json", dumps(doc), "--engine", "aws-config")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "has an unexpected" in result.output  # the table wraps the rest of the message


def test_engine_that_cannot_read_an_input_is_exit_2_with_a_message(tmp_path: Path) -> None:
    doc = rendered("prod")
    _first_of(doc, "aws:ec2/securityGroup:SecurityGroup")["inputs"]["ingress"] = ["not a rule"]
    result = _cli(tmp_path, "prod.json", dumps(doc), "--engine", "cdk-nag")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "engine cdk-nag cannot read this plan" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("counts", "models", "cap", "problem"),
    [
        ({"maxResources": 3, "maxResourcesPerModel": 1}, 50, 53, None),
        ({"maxResourcesPerModel": 2}, 10, 20, None),
        ({"maxResources": 0, "maxResourcesPerModel": 0}, 1, None, "at least one of them positive"),
        ({"maxResourcesPerModel": -1}, 1, None, "whole numbers"),
    ],
)
def test_a_pattern_waiver_may_scale_with_the_models_of_the_stack(
    tmp_path: Path, counts: dict, models: int, cap: int | None, problem: str | None
) -> None:
    entry = {
        "engine": "checkov",
        "rule": "CKV_AWS_115",
        "resource": "*$aws:lambda/function:Function::*",
        "reason": "reviewed per model",
        "owner": "platform",
        "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
        **counts,
    }
    path = tmp_path / "exceptions.yaml"
    path.write_text(yaml.safe_dump({"exceptions": [entry]}))
    waivers, problems = load(path, engines=["checkov"])
    if problem:
        assert not waivers and any(problem in p for p in problems)
    else:
        assert problems == [] and waivers[0].cap(models) == cap


def test_plan_type_index_follows_a_replaced_resource_list() -> None:
    doc = rendered("dev")
    plan = parse_plan(doc)
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms == [r for r in plan.resources if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"]
    both = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:sns/topic:Topic")
    assert both == [
        r for r in plan.resources if r.type in ("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:sns/topic:Topic")
    ]
    plan.resources = [r for r in plan.resources if r.type != "aws:cloudwatch/metricAlarm:MetricAlarm"]
    assert plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") == []
    assert plan.stack_urn().endswith("::clinops-dev")


def test_start_engines_begins_only_the_registered_engines_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """checkov's worker and cdk-nag's jsii start before the plans are bound (or rendered), but not for a stand-in
    or a run without them."""
    import policies.gate as gate_module

    started: list[str] = []
    for name in ("checkov", "cdk-nag"):
        engine = gate_module.STARTERS[name][0]
        monkeypatch.setitem(gate_module.STARTERS, name, (engine, lambda name=name: started.append(name)))
    gate_module.start_engines(["clinops", "aws-config"])
    assert started == []
    gate_module.start_engines()
    assert started == ["checkov", "cdk-nag"]
    monkeypatch.setitem(gate_module.ENGINES, "checkov", lambda plans: [])
    gate_module.start_engines(["checkov"])
    assert started == ["checkov", "cdk-nag"]


def test_cdk_nag_scans_wait_for_the_warm_up_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsii has one channel to its Node process: a scan begun during the warm-up waits for it to end."""
    import threading

    from policies.engines import cdknag_engine

    order: list[str] = []
    release = threading.Event()

    def fake_scan(plans: list) -> list:
        if plans and plans[0].stack == "warm-up":
            release.wait(5)
            order.append("warm-up")
        else:
            order.append("scan")
        return []

    monkeypatch.setattr(cdknag_engine, "_scan_plans", fake_scan)
    monkeypatch.setattr(cdknag_engine, "_warming", None)
    cdknag_engine.start_warm_up()
    cdknag_engine.start_warm_up()  # idempotent: one thread per process
    scanner = threading.Thread(
        target=cdknag_engine.scan_plans, args=([Plan(resources=[], config={}, stack="dev", project="clinops")],)
    )
    scanner.start()
    scanner.join(0.2)
    assert order == [] and scanner.is_alive()  # still waiting for the warm-up
    release.set()
    scanner.join(5)
    assert order == ["warm-up", "scan"]
