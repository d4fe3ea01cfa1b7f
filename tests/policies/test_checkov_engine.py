"""checkov over the Terraform view: key checks pass on the secure plan, fire on the broken one, and every
finding lands on the URN of the resource that caused it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policies import controls
from policies.engines import checkov_engine
from policies.engines.tfview import UNKNOWN, build_tf_view, tf_type, write_tf_view
from policies.model import EngineReport
from policies.plan import Plan, PlanResource
from tests.policies import enginefixtures as fx
from tests.policies.planbuilder import PlanBuilder

# (check id, resource name): what the secure plan passes and the broken plan fails.
KEY_CHECKS = [
    ("CKV_AWS_145", fx.BROKEN_BUCKET),  # SSE-KMS by default (graph: bucket -> encryption configuration)
    ("CKV2_AWS_6", fx.BROKEN_BUCKET),  # public access block (graph)
    ("CKV_AWS_18", fx.BROKEN_BUCKET),  # access logging (graph)
    ("CKV_AWS_21", fx.BROKEN_BUCKET),  # versioning (graph)
    ("CKV2_AWS_11", fx.BROKEN_VPC),  # flow logs (graph: VPC <- flow log)
    ("CKV2_AWS_12", fx.BROKEN_VPC),  # default security group closed (graph)
    ("CKV_AWS_7", fx.BROKEN_KEY),  # key rotation
    ("CKV_AWS_24", fx.BROKEN_SG),  # no SSH from 0.0.0.0/0
    ("CKV_AWS_36", fx.BROKEN_TRAIL),  # log file validation
    ("CKV_AWS_35", fx.BROKEN_TRAIL),  # trail encrypted with a CMK
    ("CKV_AWS_158", "flow-logs"),  # log group encrypted with KMS
    ("CKV_AWS_26", "alerts"),  # SNS topic encrypted
    ("CKV_AWS_98", "readmission-config"),  # SageMaker endpoint configuration encrypted
    ("CKV_AWS_130", "private-a"),  # no public IPs on launch
    ("CKV_AWS_62", "read-only"),  # no "*:*" admin policy
]


@pytest.fixture(scope="module")
def builders() -> dict[str, PlanBuilder]:
    return {"secure": fx.secure(), "broken": fx.broken(), "unknown": fx.unknown_ids(fx.secure())}


@pytest.fixture(scope="module")
def reports(builders: dict[str, PlanBuilder]) -> dict[str, EngineReport]:
    names = list(builders)
    return dict(zip(names, checkov_engine.scan_plans([builders[n].plan() for n in names]), strict=True))


def status(report: EngineReport, rule: str, urn: str) -> set[str]:
    return {r.status for r in report.results if r.rule_id == rule and r.urn == urn}


@pytest.mark.parametrize(("rule", "name"), KEY_CHECKS)
def test_secure_plan_passes_key_checks(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder], rule: str, name: str
) -> None:
    assert status(reports["secure"], rule, builders["secure"].urn(name)) == {"passed"}


@pytest.mark.parametrize(("rule", "name"), KEY_CHECKS)
def test_broken_plan_fails_key_checks_on_the_culprit(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder], rule: str, name: str
) -> None:
    assert status(reports["broken"], rule, builders["broken"].urn(name)) == {"failed"}


def test_missing_encryption_configuration_is_caught_by_the_kms_check_only(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    """Since 2023 S3 encrypts every bucket with SSE-S3, so checkov's CKV_AWS_19 passes a bucket with no
    configuration at all; CKV_AWS_145 (SSE-KMS) is the check that blocks it."""
    urn = builders["broken"].urn(fx.BROKEN_BUCKET)
    assert status(reports["broken"], "CKV_AWS_19", urn) == {"passed"}
    assert status(reports["broken"], "CKV_AWS_145", urn) == {"failed"}


def test_compliant_neighbours_in_the_broken_plan_are_not_blamed(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    b = builders["broken"]
    for rule in ("CKV_AWS_145", "CKV2_AWS_6", "CKV_AWS_21"):
        assert status(reports["broken"], rule, b.urn("access-logs")) == {"passed"}
    assert status(reports["broken"], "CKV2_AWS_11", b.urn(fx.CLOSED_VPC)) == {"passed"}
    assert status(reports["broken"], "CKV2_AWS_12", b.urn(fx.CLOSED_VPC)) == {"passed"}


def test_links_hold_when_ids_are_unknown_as_in_a_real_preview(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    b = builders["unknown"]
    assert b.resources["vpc-flow-log"].inputs["vpcId"] == UNKNOWN
    for rule, name in (
        ("CKV2_AWS_11", "vpc"),
        ("CKV2_AWS_6", "phi-data"),
        ("CKV_AWS_145", "phi-data"),
        ("CKV_AWS_18", "phi-data"),
        ("CKV2_AWS_12", "vpc"),
    ):
        assert status(reports["unknown"], rule, b.urn(name)) == {"passed"}, rule


def test_findings_carry_hipaa_controls_and_severity(reports: dict[str, EngineReport]) -> None:
    by_rule = {r.rule_id: r for r in reports["broken"].results if r.status == "failed"}
    assert by_rule["CKV_AWS_145"].controls == (controls.ENCRYPTION,)
    assert by_rule["CKV2_AWS_11"].controls == (controls.AUDIT,)
    assert controls.ACCESS_CONTROL in by_rule["CKV_AWS_62"].controls
    assert by_rule["CKV_AWS_24"].severity == "critical"
    assert all(r.engine == "checkov" and r.controls for r in reports["broken"].results)
    assert all(r.resource_type.startswith("aws:") for r in reports["broken"].results)


def test_coverage_counts_types_judged_through_connections(reports: dict[str, EngineReport]) -> None:
    coverage = reports["secure"].coverage
    assert coverage[fx.FLOW_LOG] == "seen"  # judged as the VPC's flow log, findings on the VPC
    assert coverage[fx.S3.format("Versioning", "Versioning")] == "seen"
    assert coverage[fx.BUCKET] == "seen"


def test_non_aws_types_are_unseen_and_noted() -> None:
    b = fx.secure()
    b.add("random:index/randomId:RandomId", "suffix", {"byteLength": 4})
    b.add("aws:cloudwatch/dashboard:Dashboard", "ops", {"dashboardName": "ops", "dashboardBody": "{}"})
    report = checkov_engine.scan(b.plan(), checks=["CKV_AWS_7"])
    assert report.coverage["random:index/randomId:RandomId"] == "unseen"
    assert report.coverage["aws:cloudwatch/dashboard:Dashboard"] == "unseen"  # mapped, but no check reads it
    assert any("random:index/randomId:RandomId" in n for n in report.notes)
    assert any("aws_cloudwatch_dashboard" in n for n in report.notes)  # generic mapping is reported


def test_addresses_are_unique_terraform_identifiers() -> None:
    b = PlanBuilder("prod")
    for name in ("a-b", "a_b", "a.b", "9lives", "a b"):
        b.add(fx.TOPIC, name, {})
    view = build_tf_view(b.plan())
    addresses = list(view.urn_by_address)
    assert len(set(addresses)) == 5
    assert all(re.fullmatch(r"aws_sns_topic\.[A-Za-z_][A-Za-z0-9_]*", a) for a in addresses)
    assert sorted(view.urn_by_address.values()) == sorted(b.urn(n) for n in ("a-b", "a_b", "a.b", "9lives", "a b"))


def test_view_writes_links_as_terraform_references(tmp_path: Path) -> None:
    plan: Plan = fx.secure().plan()
    view = write_tf_view(plan, tmp_path / "view.json")
    doc = json.loads((tmp_path / "view.json").read_text())
    assert doc["terraform_version"]
    planned = {r["address"]: r for r in doc["planned_values"]["root_module"]["resources"]}
    configured = {r["address"]: r for r in doc["configuration"]["root_module"]["resources"]}
    log = view.address_of(fx.secure().urn("vpc-flow-log"))
    assert planned[log]["values"]["vpc_id"] == "aws_vpc.vpc.id"
    assert "aws_vpc.vpc" in configured[log]["expressions"]["vpc_id"]["references"]
    sse = view.address_of(fx.secure().urn("phi-data-encryption"))
    rule = planned[sse]["values"]["rule"][0]  # Pulumi's `rules` is Terraform's `rule` block
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"


def test_type_table() -> None:
    assert tf_type("aws:cloudtrail/trail:Trail") == "aws_cloudtrail"
    assert tf_type("aws:ec2/vpc:Vpc") == "aws_vpc"
    assert tf_type("aws:ec2/natGateway:NatGateway") == "aws_nat_gateway"  # generic: ec2 drops its module
    assert tf_type("aws:sagemaker/featureGroup:FeatureGroup") == "aws_sagemaker_feature_group"
    assert tf_type("random:index/randomId:RandomId") is None
    # Terraform spells API Gateway `api_gateway` (the generic rule would say `apigateway`, which no check names)
    assert tf_type("aws:apigateway/restApi:RestApi") == "aws_api_gateway_rest_api"
    assert tf_type("aws:apigateway/methodSettings:MethodSettings") == "aws_api_gateway_method_settings"
    assert tf_type("aws:s3/bucketObjectv2:BucketObjectv2") == "aws_s3_object"


def test_real_stack_findings_land_on_its_urns_and_its_controls_hold() -> None:
    """The rendered prod stack: every finding on one of its URNs; what the platform promises passes."""
    promised = [
        ("CKV2_AWS_11", fx.VPC),
        ("CKV2_AWS_12", fx.VPC),
        ("CKV2_AWS_6", fx.BUCKET),
        ("CKV_AWS_21", fx.BUCKET),
        ("CKV_AWS_18", fx.BUCKET),
        ("CKV_AWS_7", fx.KEY),
        ("CKV_AWS_36", fx.TRAIL),
        ("CKV_AWS_158", fx.LOG_GROUP),
        # the CDS Hooks API, judged under Terraform's `aws_api_gateway_*` names: X-Ray, access logs, logging level,
        # no open method on a public API (it is private), cache encryption
        ("CKV_AWS_73", "aws:apigateway/stage:Stage"),
        ("CKV_AWS_76", "aws:apigateway/stage:Stage"),
        ("CKV2_AWS_4", "aws:apigateway/stage:Stage"),
        ("CKV2_AWS_70", "aws:apigateway/method:Method"),
        ("CKV_AWS_308", "aws:apigateway/methodSettings:MethodSettings"),
    ]

    def outside(rule: str, resource: PlanResource) -> bool:
        # CKV_AWS_7 judges symmetric keys only: KMS cannot rotate the evidence HMAC key (a reviewed exception).
        return rule == "CKV_AWS_7" and resource.inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") != (
            "SYMMETRIC_DEFAULT"
        )

    fx.assert_real_stack_promises(checkov_engine.scan, promised, outside=outside)


def test_user_maps_keep_their_keys_and_nested_objects_become_blocks() -> None:
    b = PlanBuilder("prod")
    b.add(
        "aws:lambda/function:Function",
        "canary",
        {
            "code": {"archive": {"handler.py": {"asset": {"path": "handler.py"}}}},
            "tags": {"clinops:owner": "ml"},
            "environment": {"variables": {"ENDPOINT_NAME": "x"}},
            "tracingConfig": {"mode": "Active"},
        },
    )
    values = build_tf_view(b.plan()).doc["planned_values"]["root_module"]["resources"][0]["values"]
    assert values["tags"] == {"clinops:owner": "ml"}
    assert values["environment"] == {"variables": {"ENDPOINT_NAME": "x"}}
    assert values["tracing_config"] == [{"mode": "Active"}]
    assert values["filename"] == "pulumi-archive.zip"  # an archive's content is not configuration


def test_passes_on_documents_unknown_until_apply_are_withheld() -> None:
    """checkov passes a policy it cannot see; with the document unknown (a real preview) it must not count."""
    b = PlanBuilder("prod")
    b.add(fx.POLICY, "computed", {"policy": UNKNOWN})
    b.add(fx.POLICY, "admin", {"policy": fx.doc({"Effect": "Allow", "Action": "*", "Resource": "*"})})
    report = checkov_engine.scan(b.plan())
    assert not [r for r in report.results if r.urn == b.urn("computed")]
    assert status(report, "CKV_AWS_62", b.urn("admin")) == {"failed"}
    assert any("unknown until apply" in n for n in report.notes)


# ------------------------------------------------------------------------------------------ the worker process
def test_checkov_runs_in_one_reused_process_of_its_own(reports: dict[str, EngineReport]) -> None:
    """checkov is CPU-bound Python: it must not run under the gate's GIL, and its import is paid once."""
    import os
    import sys

    checkov_engine.start_worker()  # the running one, or a new one if a test before this one killed it
    worker = checkov_engine._worker
    assert worker is not None and worker.alive() and worker.process.pid != os.getpid()
    assert "checkov.terraform.plan_runner" not in sys.modules  # the gate's process never imports checkov
    for _ in range(2):
        checkov_engine.scan(fx.secure().plan(), checks=["CKV_AWS_7"])
        assert checkov_engine._worker is worker and worker.alive()  # the same process served each scan


def test_a_worker_that_died_is_replaced_and_the_scan_still_judges() -> None:
    checkov_engine.start_worker()
    assert checkov_engine._worker is not None
    dead = checkov_engine._worker
    dead.process.kill()
    dead.process.wait()
    report = checkov_engine.scan(fx.broken().plan(), checks=["CKV_AWS_7"])
    assert checkov_engine._worker is not dead
    assert status(report, "CKV_AWS_7", fx.broken().urn(fx.BROKEN_KEY)) == {"failed"}


def test_a_worker_that_dies_mid_scan_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    checkov_engine.start_worker()
    worker = checkov_engine._worker
    assert worker is not None
    worker.process.kill()
    worker.process.wait()
    monkeypatch.setattr(checkov_engine, "start_worker", lambda: None)  # no replacement: the scan meets the corpse
    with pytest.raises(RuntimeError, match=r"checkov worker \(policies.engines.checkov_worker\) exited"):
        checkov_engine.scan(fx.secure().plan(), checks=["CKV_AWS_7"])


def test_a_request_the_worker_cannot_serve_raises_its_error_and_the_worker_serves_the_next(tmp_path: Path) -> None:
    checkov_engine.start_worker()
    worker = checkov_engine._worker
    assert worker is not None
    write_tf_view(fx.secure().plan(), tmp_path / "view.json")
    # checkov fails inside the worker (a check list that is not a list): a read error keeps its type there, so
    # the gate reports a plan checkov cannot read as unusable input
    with pytest.raises(TypeError, match="not iterable"):
        worker.scan([tmp_path / "view.json"], 42)  # type: ignore[arg-type]
    assert checkov_engine.scan(fx.secure().plan(), checks=["CKV_AWS_7"]).results
    assert checkov_engine._worker is worker


def test_worker_errors_keep_their_read_error_type_or_carry_the_trace() -> None:
    decode = {"type": "UnicodeDecodeError", "kinds": ["UnicodeDecodeError", "UnicodeError", "ValueError"]}
    error = checkov_engine._reraised({**decode, "message": "bad byte", "trace": "T"})
    assert type(error) is ValueError and str(error) == "UnicodeDecodeError: bad byte"
    error = checkov_engine._reraised({"type": "KeyError", "kinds": ["KeyError"], "message": "'x'", "trace": "T"})
    assert type(error) is KeyError
    error = checkov_engine._reraised({"type": "OSError", "kinds": ["OSError"], "message": "disk", "trace": "TRACE"})
    assert type(error) is RuntimeError and "OSError: disk" in str(error) and "TRACE" in str(error)


def test_the_worker_ends_when_its_input_closes() -> None:
    checkov_engine.start_worker()
    worker = checkov_engine._worker
    assert worker is not None
    worker.stop()
    assert worker.process.returncode == 0


def test_a_forked_child_starts_its_own_worker_and_leaves_its_parents_alone() -> None:
    import os

    checkov_engine.start_worker()
    parent_worker = checkov_engine._worker
    assert parent_worker is not None
    pid = os.fork()
    if pid == 0:  # the child: the inherited worker is not its own, so it is neither used nor stopped
        code = 0 if not parent_worker.alive() else 1
        parent_worker.stop()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent_worker.alive()
    assert checkov_engine.scan(fx.secure().plan(), checks=["CKV_AWS_7"]).results
    assert checkov_engine._worker is parent_worker
