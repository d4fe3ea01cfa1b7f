"""`release`: refusals change nothing and exit distinctly; a good release pins, gates, records, deploys."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from botocore.stub import Stubber

from clinops import names
from clinops.config import load_from_stack_file
from clinops.exitcodes import ExitCode, ReleaseError
from serving.release import gate as release_gate
from serving.release.aws import open_stack
from serving.release.evidence import CHECK_DEPLOYMENT, CHECK_SHADOW, EvidenceLocation, trusted_history
from serving.release.gate import GateOptions
from serving.release.pulumi import PulumiRunner
from serving.release.release import Releaser, ReleaseRequest
from tests.serving.release.helpers import (
    ACTOR,
    MODEL,
    PROD_ACCOUNT,
    Registry,
    endpoint_description,
    not_found_endpoint,
    package_arn,
    seed_evidence,
    stack_aws,
    stubbed,
)
from tests.serving.release.test_baseline import BUILD_BUCKET, GOOD, MODEL_KEY, build_account, with_model_data

REASON = "CHG-2211: quarterly retrain approved by the readmission committee"
FAST_GATE = GateOptions(engines=("clinops",))


def no_pulumi(root: Path) -> PulumiRunner:
    return PulumiRunner(root, which=lambda _: None)


def fake_pulumi(tmp_path: Path, exit_code: int, root: Path) -> tuple[PulumiRunner, Path]:
    """A `pulumi` on PATH that records its arguments and working directory, then exits with `exit_code`."""
    log = tmp_path / f"pulumi-{exit_code}.log"
    script = tmp_path / f"pulumi-{exit_code}"
    script.write_text(f'#!/bin/sh\necho "$PWD $*" >> {log}\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return PulumiRunner(root, which=lambda _: str(script)), log


def attempt(releaser: Releaser, stack: str, package: str, model: str = MODEL, **flags: bool) -> ReleaseError:
    with pytest.raises(ReleaseError) as caught:
        releaser.release(ReleaseRequest(stack, model, package, REASON, ACTOR, **flags))
    return caught.value


def releases(evidence: EvidenceLocation, stack: str) -> list:
    return [e for e in trusted_history(evidence.log(stack), MODEL) if e.kind.value == "release"]


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceLocation:
    return EvidenceLocation(str(tmp_path / "evidence"))


def test_a_stack_without_the_model_or_a_bad_arn_is_unusable_input(session, project, evidence) -> None:
    releaser = Releaser(project, stack_aws(session), evidence, pulumi=no_pulumi(project))
    refused = attempt(releaser, "dev", package_arn(1, "triage"), model="triage")
    assert refused.exit_code == ExitCode.UNUSABLE_INPUT
    assert "no model 'triage'" in refused.message
    refused = attempt(releaser, "dev", "arn:aws:sagemaker:us-east-1:1:x", model="sepsis-warning")
    assert (refused.exit_code, "not a versioned model package ARN" in refused.message) == (2, True)
    refused = attempt(releaser, "dev", package_arn(1, "sepsis-warning"))
    assert "belongs to group 'sepsis-warning'" in refused.message
    assert attempt(releaser, "qa", package_arn(1)).exit_code == ExitCode.UNUSABLE_INPUT
    assert not releases(evidence, "dev")  # unusable input is not an attempt worth recording


def test_unapproved_package_is_refused_recorded_and_nothing_changes(session, project, evidence, registry) -> None:
    arn = registry.register()
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(arn))
    before = (project / "Pulumi.dev.yaml").read_bytes()
    refused = attempt(Releaser(project, stack_aws(session, sagemaker=client), evidence), "dev", arn)
    assert refused.exit_code == ExitCode.PACKAGE_NOT_RELEASABLE
    assert (project / "Pulumi.dev.yaml").read_bytes() == before
    [entry] = releases(evidence, "dev")
    assert (entry.details["outcome"], entry.details["exit_code"], entry.actor) == ("refused", 3, ACTOR)


def test_staging_needs_dev_verification_then_waits_for_a_busy_endpoint(session, project, evidence, registry) -> None:
    [arn] = registry.approved()
    client, stub = stubbed("sagemaker")
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence)
    stub.add_response("describe_model_package", registry.describe(arn))
    refused = attempt(releaser, "staging", arn)
    assert refused.exit_code == ExitCode.PROMOTION_ORDER
    assert "no passing verification in dev (dev)" in refused.message
    seed_evidence(evidence, "dev", "verification", CHECK_DEPLOYMENT, arn, passed=True)
    stub.add_response("describe_model_package", registry.describe(arn))
    busy = endpoint_description("staging", names.config_name("staging", MODEL, package_arn(3)), status="Updating")
    stub.add_response("describe_endpoint", busy, {"EndpointName": "clinops-staging-readmission-risk"})
    refused = attempt(releaser, "staging", arn)
    assert refused.exit_code == ExitCode.ENDPOINT_BUSY
    assert "is Updating" in refused.message
    stub.assert_no_pending_responses()
    assert [e.details["exit_code"] for e in releases(evidence, "staging")] == [6, 8]


def test_prod_needs_staging_verification_and_a_canary_needs_a_passing_shadow(session, project, evidence, registry):
    [arn] = registry.approved()
    client, stub = stubbed("sagemaker")
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence)
    stub.add_response("describe_model_package", registry.describe(arn))
    assert "no passing verification in staging" in attempt(releaser, "prod", arn).message
    seed_evidence(evidence, "staging", "verification", CHECK_DEPLOYMENT, arn, passed=True)
    seed_evidence(evidence, "prod", "shadow", CHECK_SHADOW, arn, passed=False, verdict="fail")
    stub.add_response("describe_model_package", registry.describe(arn))
    refused = attempt(releaser, "prod", arn)
    assert refused.exit_code == ExitCode.PROMOTION_ORDER
    assert "needs a passing shadow report" in refused.message and "did not pass" in refused.message


def test_throttling_is_retried_with_backoff_then_the_answer_is_used(session, project, evidence, registry) -> None:
    arn = registry.register()  # pending: the refusal proves the (third) answer was read
    client, stub = stubbed("sagemaker")
    for _ in range(2):
        stub.add_client_error("describe_model_package", "ThrottlingException", "Rate exceeded", 400)
    stub.add_response("describe_model_package", registry.describe(arn))
    sleeps: list[float] = []
    refused = attempt(Releaser(project, stack_aws(session, sleeps, sagemaker=client), evidence), "dev", arn)
    assert refused.exit_code == ExitCode.PACKAGE_NOT_RELEASABLE
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_throttling_that_persists_gives_up_after_bounded_attempts(session, project, evidence, registry) -> None:
    arn = registry.register()
    client, stub = stubbed("sagemaker")
    for _ in range(4):
        stub.add_client_error("describe_model_package", "ThrottlingException", "Rate exceeded", 400)
    sleeps: list[float] = []
    refused = attempt(Releaser(project, stack_aws(session, sleeps, sagemaker=client), evidence), "dev", arn)
    assert refused.exit_code == ExitCode.AWS_UNAVAILABLE
    assert "still failing after 4 attempts" in refused.message
    assert len(sleeps) == 3 and sum(sleeps) <= 0.5 + 1.0 + 2.0
    stub.assert_no_pending_responses()


def test_prod_canary_cross_account_happy_path(session, project, evidence, registry) -> None:
    *_, previous, arn = registry.approved(versions=4)
    assert (previous, arn) == (package_arn(3), package_arn(4))
    seed_evidence(evidence, "staging", "verification", CHECK_DEPLOYMENT, arn, passed=True)
    seed_evidence(evidence, "prod", "shadow", CHECK_SHADOW, arn, passed=True, verdict="pass")
    seed_evidence(evidence, "prod", "verification", CHECK_DEPLOYMENT, package_arn(2), passed=True)
    config = load_from_stack_file("prod", project)
    client, stub = stubbed("sagemaker")
    aws = open_stack(config, ACTOR, session, clients={"sagemaker": client})
    assert aws.session.client("sts").get_caller_identity()["Arn"] == (
        f"arn:aws:sts::{PROD_ACCOUNT}:assumed-role/clinops-prod-deployer/pipeline-42"
    )
    stub.add_response("describe_model_package", registry.describe(arn), {"ModelPackageName": arn})
    serving = names.config_name("prod", MODEL, package_arn(2))
    stub.add_response("describe_endpoint", endpoint_description("prod", serving, instances=2))
    said: list[str] = []
    releaser = Releaser(project, aws, evidence, gate_options=FAST_GATE, pulumi=no_pulumi(project), say=said.append)
    outcome = releaser.release(ReleaseRequest("prod", MODEL, arn, REASON, ACTOR))
    command = "pulumi up --stack prod --yes --policy-pack policies --policy-pack-config policies/config/prod.json"
    assert outcome.status == "pinned" and outcome.command == command
    assert said[-1].endswith(f"Deploy with:\n  {command}")
    model = next(m for m in load_from_stack_file("prod", project).models if m.name == MODEL)
    assert (model.package_arn, model.last_known_good_package_arn) == (arn, package_arn(2))
    assert (project / "Pulumi.prod.yaml").read_text().startswith("# prod: patients depend on it.")
    [entry] = releases(evidence, "prod")
    details = entry.details
    assert (entry.actor, entry.reason, entry.package_arn) == (ACTOR, REASON, arn)
    assert details["gate"]["verdict"] == "pass" and details["gate"]["plan_hash"] == outcome.gate.plan_hash
    assert details["promotion"]["verified_in"]["stack"] == "staging" and details["promotion"]["shadow_report"]
    assert details["package"]["approver"]["source_identity"] == "bob@hospital.example"
    assert details["mode"] == "canary" and details["endpoint_status_before"] == "InService"
    # What verify will look for is what the rendered stack declares.
    wanted = {
        names.config_name("prod", MODEL, arn),
        *names.alarm_names("prod", MODEL),
        names.parameter_name("prod", MODEL, names.PINNED_PARAMETER),
        names.parameter_name("prod", MODEL, names.LAST_KNOWN_GOOD_PARAMETER),
    }
    assert wanted <= outcome.gate.declared


def test_gate_failure_leaves_the_stack_file_untouched(session, project, evidence, registry) -> None:
    """A real gate failure: in 2099 the reviewed exceptions have expired, which fails the gate (CLIN-GATE-001)."""
    [arn] = registry.approved()
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(arn))
    not_found_endpoint(stub, "clinops-dev-readmission-risk")
    before = (project / "Pulumi.dev.yaml").read_bytes()
    gate = GateOptions(engines=("clinops",), today=dt.date(2099, 1, 1))
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence, gate_options=gate)
    refused = attempt(releaser, "dev", arn)
    assert refused.exit_code == ExitCode.GATE_FAILED
    assert (project / "Pulumi.dev.yaml").read_bytes() == before
    [entry] = releases(evidence, "dev")
    assert entry.details["gate"]["verdict"] == "fail"
    assert "CLIN-GATE-001" in {b["rule"] for b in entry.details["gate"]["blocking"]}


def _dev_release(releaser: Releaser, stub: Stubber, registry: Registry, arn: str, **flags: bool):
    stub.add_response("describe_model_package", registry.describe(arn))
    stub.add_response("describe_endpoint", endpoint_description("dev", names.config_name("dev", MODEL, package_arn(3))))
    return releaser.release(ReleaseRequest("dev", MODEL, arn, REASON, ACTOR, **flags))


def test_dry_run_and_unrecordable_releases_change_nothing(session, project, evidence, registry, tmp_path) -> None:
    [arn] = registry.approved()
    client, stub = stubbed("sagemaker")
    before = (project / "Pulumi.dev.yaml").read_bytes()
    pulumi, log = fake_pulumi(tmp_path, 0, project)
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence, gate_options=FAST_GATE, pulumi=pulumi)
    outcome = _dev_release(releaser, stub, registry, arn, dry_run=True)
    assert outcome.status == "dry-run" and outcome.changes["packageArn"]["to"] == arn
    assert (project / "Pulumi.dev.yaml").read_bytes() == before and not log.exists()
    assert not (tmp_path / "evidence").exists()
    (tmp_path / "not-a-directory").write_text("")
    broken = EvidenceLocation(str(tmp_path / "not-a-directory"))
    releaser = Releaser(project, stack_aws(session, sagemaker=client), broken, gate_options=FAST_GATE, pulumi=pulumi)
    with pytest.raises(ReleaseError, match="could not write evidence") as caught:
        _dev_release(releaser, stub, registry, arn)
    assert caught.value.exit_code == ExitCode.EVIDENCE_UNAVAILABLE
    assert (project / "Pulumi.dev.yaml").read_bytes() == before and not log.exists()


def test_pulumi_up_runs_and_a_failed_deploy_restores_the_pin(session, project, evidence, registry, tmp_path) -> None:
    [arn] = registry.approved()
    client, stub = stubbed("sagemaker")
    before = (project / "Pulumi.dev.yaml").read_bytes()
    failing, failing_log = fake_pulumi(tmp_path, 1, project)
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence, gate_options=FAST_GATE, pulumi=failing)
    with pytest.raises(ReleaseError, match=r"exited 1.*restored") as caught:
        _dev_release(releaser, stub, registry, arn)
    assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
    assert (project / "Pulumi.dev.yaml").read_bytes() == before
    assert failing_log.read_text().split() == [
        str(project),
        "up",
        "--stack",
        "dev",
        "--yes",
        "--policy-pack",
        "policies",
        "--policy-pack-config",
        "policies/config/dev.json",
    ]
    working, _ = fake_pulumi(tmp_path, 0, project)
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence, gate_options=FAST_GATE, pulumi=working)
    key_arn = build_account(session, GOOD)
    described = registry.describe(arn)
    stub.add_response("describe_model_package", described)
    stub.add_response("describe_endpoint", endpoint_description("dev", names.config_name("dev", MODEL, package_arn(3))))
    stub.add_response("describe_model_package", with_model_data(described, f"s3://{BUILD_BUCKET}/{MODEL_KEY}"))
    outcome = releaser.release(ReleaseRequest("dev", MODEL, arn, REASON, ACTOR))
    assert outcome.status == "deployed"
    assert load_from_stack_file("dev", project).models[0].package_arn == arn
    outcomes = [e.details["outcome"] for e in releases(evidence, "dev")]
    assert outcomes == ["pinned", "deploy-failed", "pinned", "deployed"]
    # the deployed package's drift baseline is where the drift pipeline reads it, and the evidence says so
    deployed = releases(evidence, "dev")[-1].details["drift_baseline"]
    assert deployed["keys"][0] == f"{MODEL}/baseline/baseline.json" and deployed["kms_key_arn"] == key_arn


def test_unknown_gate_engine_is_unusable_input_before_anything_renders(project) -> None:
    with pytest.raises(ReleaseError) as caught:
        release_gate.run("dev", project, GateOptions(engines=("clinops", "trivy")))
    assert caught.value.exit_code == ExitCode.UNUSABLE_INPUT
    assert "trivy" in str(caught.value) and "aws-config" in str(caught.value)  # names the registry's engines
