"""The access engine: every flow's grants are proven by a real IAM evaluator on the rendered plans, and every
must-deny holds. Mutations of single grants and policies show each check can fail, naming its flow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.render import dumps
from policies.bundle import write_bundle
from policies.engines import access_engine, iam_evaluator
from policies.engines.access_model import build_model
from policies.gate import bind_stack, run_gates
from policies.model import CheckResult
from policies.plan import parse_plan
from tests.conftest import rendered

STACKS = ("dev", "staging", "prod")


# ---------------------------------------------------------------------------------------------------------
# The shipped stacks pass: every defect of issue 11 the engine found (deployer key use, promoted-model reads,
# DescribeAlarms, Lambda order, CloudTrail decrypt, evidence and SNS keys, drift report keys, scheduler key use,
# data capture, security-group rules, boundary and persona IAM, key-administrator rights, access-log SSE, X-Ray
# endpoint, MLflow tracking from cloud steps) is fixed on main; GRANT_REMOVALS and the must-deny mutations below
# show each check still fails when its grant or deny is taken away.
# Issue 11 defect 6 (reserved concurrency vs a new account's quota of 10) is a service quota, not an authorization:
# the access engine does not judge it.


# ---------------------------------------------------------------------------------------------------------
def judge(*docs: dict) -> dict[str, list[CheckResult]]:
    plans = [parse_plan(doc) for doc in docs]
    judgements, _, _ = access_engine.judge_plans(plans)
    return {plan.stack: j.results for plan, j in zip(plans, judgements, strict=True)}


_SHIPPED: dict[str, list[CheckResult]] = {}


def shipped() -> dict[str, list[CheckResult]]:
    """All three stacks judged once (one batch, so cross-account flows see both sides)."""
    if not _SHIPPED:
        _SHIPPED.update(judge(*(rendered(s) for s in STACKS)))
    return _SHIPPED


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "failed"]


def test_shipped_stacks_pass_the_access_engine() -> None:
    findings = [f"{stack}: {r.rule_id}: {r.message}" for stack, results in shipped().items() for r in failed(results)]
    assert not findings, "access findings on the shipped stacks (a regression):\n" + "\n".join(findings)


def test_every_flow_of_the_issue_and_every_must_deny_is_in_the_catalogue() -> None:
    catalogue = access_engine.load_catalogue()
    flows = {i.flow for i in catalogue.intents if i.expect == "allow"}
    assert {
        "deploy",
        "training-pipeline",
        "promotion",
        "endpoint",
        "release",
        "circuit-breaker",
        "approval-recorder",
        "retraining",
        "retraining-forwarder",
        "drift-pipeline",
        "scheduler",
        "cloudtrail",
        "s3-access-logging",
        "flow-logs",
        "canary",
        "mlflow-tracking",
    } <= flows
    denies = {i.flow for i in catalogue.intents if i.expect == "deny"}
    assert {
        "segregation-of-duties",
        "phi-stays-inside",
        "keys-are-used-only-by-their-users",
        "evidence-is-immutable",
        "permissions-boundary",
        "mlflow-tracking-stays-inside",
    } <= denies
    assert set(catalogue.perimeter) >= {"s3", "kms", "sns", "sqs", "ecr", "sagemaker", "events"}


def test_each_passing_result_was_proven_by_the_evaluator() -> None:
    results = shipped()["prod"]
    passed = [r for r in results if r.status == "passed" and r.rule_id.startswith(("CLIN-ACCESS-", "CLIN-DENY-"))]
    assert len(passed) > 100
    assert {r.engine for r in results} == {"access"}


# ---------------------------------------------------------------------------------------------------------
# mutations of the plan's policies
def _step(doc: dict, urn_suffix: str) -> dict:
    matches = [s for s in doc["steps"] if s["urn"].endswith(urn_suffix)]
    assert len(matches) == 1, f"{urn_suffix}: {len(matches)} steps"
    return matches[0]


def edit_policy(doc: dict, urn_suffix: str, change: Callable[[dict], None], prop: str = "policy") -> dict:
    inputs = _step(doc, urn_suffix)["newState"]["inputs"]
    policy = json.loads(inputs[prop])
    change(policy)
    inputs[prop] = json.dumps(policy, sort_keys=True)
    return doc


def drop_statement(sid: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        before = len(policy["Statement"])
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != sid]
        assert len(policy["Statement"]) == before - 1, sid

    return change


def drop_action(sid: str, action: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s.get("Sid") == sid)
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert action in actions, (sid, action)
        statement["Action"] = [a for a in actions if a != action]

    return change


def drop_resource(sid: str, fragment: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s.get("Sid") == sid)
        kept = [r for r in statement["Resource"] if fragment not in r]
        assert len(kept) < len(statement["Resource"]), (sid, fragment)
        statement["Resource"] = kept

    return change


def add_statement(statement: dict[str, Any]) -> Callable[[dict], None]:
    return lambda policy: policy["Statement"].append(statement)


def set_resource(sid: str, resource: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        next(s for s in policy["Statement"] if s.get("Sid") == sid)["Resource"] = resource

    return change


def flip_to_allow(sid: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s.get("Sid") == sid)
        statement["Effect"] = "Allow"
        statement.pop("Condition", None)

    return change


def remove_step(doc: dict, urn_suffix: str) -> dict:
    step = _step(doc, urn_suffix)
    doc["steps"].remove(step)
    return doc


def _key(r: CheckResult) -> tuple[str, str, str]:
    return r.rule_id, r.urn, r.message.split(" [")[0]  # a note on what the run could see is not a new finding


def newly_failed(stack: str, doc: dict, *others: dict) -> list[CheckResult]:
    before = {_key(r) for r in failed(shipped()[stack])}
    after = judge(doc, *others)[stack]
    return [r for r in failed(after) if _key(r) not in before]


def _ids(value: object) -> str:
    return value if isinstance(value, str) and "::" not in value else ""


RP, CANARY = "RolePolicy::", "readmission-risk-canary-permissions"
MLFLOW_ENDPOINT = "VpcEndpoint::endpoint-sagemaker-experiments"
GRANT_REMOVALS = [
    # (stack, flow, action the finding names, resource to change, change; None removes the resource)
    ("dev", "training-pipeline", "s3:GetObject", f"{RP}execution-permissions", drop_statement("ReadWriteTrainingData")),
    (
        "dev",
        "training-pipeline",
        "sagemaker:CreateModelPackage",
        f"{RP}execution-permissions",
        drop_action("RunPipelineSteps", "sagemaker:CreateModelPackage"),
    ),
    (
        "staging",
        "circuit-breaker",
        "sagemaker:UpdateEndpoint",
        f"{RP}circuit-breaker-permissions",
        drop_statement("Grant0"),
    ),
    (
        "prod",
        "canary",
        "sagemaker:InvokeEndpoint",
        f"{RP}{CANARY}",
        drop_action("WatchAndExerciseEndpoint", "sagemaker:InvokeEndpoint"),
    ),
    ("prod", "canary", "sagemaker:InvokeEndpoint", "VpcEndpoint::endpoint-sagemaker-runtime", None),
    (
        "dev",
        "release",
        "sagemaker:UpdateEndpoint",
        f"{RP}deployer-permissions",
        drop_action("Release", "sagemaker:UpdateEndpoint"),
    ),
    ("prod", "cloudtrail", "s3:PutObject", "BucketPolicy::evidence-policy", drop_statement("CloudTrailWrite")),
    ("dev", "retraining", "sagemaker:StartPipelineExecution", f"{RP}retraining-permissions", drop_statement("Grant0")),
    (
        "staging",
        "retraining-forwarder",
        "events:PutEvents",
        f"{RP}retraining-forwarder-permissions",
        drop_statement("ForwardToRegistryBus"),
    ),
    ("dev", "flow-logs", "logs:PutLogEvents", f"{RP}flow-logs-delivery", drop_statement("DeliverFlowLogs")),
    (
        "staging",
        "drift-pipeline",
        "s3:GetObject",
        "VpcEndpoint::s3-gateway-endpoint",
        drop_resource("PlatformBucketsOnly", "data-capture"),
    ),
    ("prod", "drift-pipeline", "kms:Decrypt", "Key::phi-key", drop_statement("DataScienceAndJobs")),
    (
        "prod",
        "circuit-breaker",
        "sns:Publish",
        "Policy::permissions-boundary",
        drop_action("PlatformServices", "sns:Publish"),
    ),
    # issue 11's defects, each put back once: the engine names the flow it breaks
    # MLflow tracking from the pipeline's TrackRun step: identity grant, boundary, the endpoint and its policy
    (
        "dev",
        "mlflow-tracking",
        "sagemaker-mlflow:LogBatch",
        f"{RP}execution-permissions",
        drop_statement("TrackExperiments"),
    ),
    (
        "dev",
        "mlflow-tracking",
        "sagemaker-mlflow:CreateRun",
        "Policy::permissions-boundary",
        drop_action("PlatformServices", "sagemaker-mlflow:*"),
    ),
    ("dev", "mlflow-tracking", "sagemaker-mlflow:LogModel", MLFLOW_ENDPOINT, None),
    (
        "dev",
        "mlflow-tracking",
        "sagemaker-mlflow:FinalizeLoggedModel",
        MLFLOW_ENDPOINT,
        drop_statement("ThisStacksTrackingServerOnly"),
    ),
    (
        "prod",
        "endpoint",
        "cloudwatch:DescribeAlarms",
        f"{RP}execution-permissions",
        drop_statement("DeploymentGuardrailAlarms"),
    ),
    ("staging", "endpoint", "s3:PutObject", f"{RP}execution-permissions", drop_statement("ReadWriteCapture")),
    (
        "dev",
        "scheduler",
        "sagemaker:StartPipelineExecution",
        f"{RP}readmission-risk-drift-scheduler-permissions",
        drop_statement("StartDriftPipeline"),
    ),
]


@pytest.mark.parametrize(("stack", "flow", "action", "target", "change"), GRANT_REMOVALS, ids=_ids)
def test_removing_a_grant_a_flow_needs_fails_naming_the_flow(
    stack: str, flow: str, action: str, target: str, change: Callable[[dict], None] | None
) -> None:
    doc = remove_step(rendered(stack), target) if change is None else edit_policy(rendered(stack), target, change)
    new = newly_failed(stack, doc)
    rule = f"CLIN-ACCESS-{flow.upper()}"
    named = [r for r in new if r.rule_id == rule and f" {action} " in r.message]
    assert named, [f"{r.rule_id}: {r.message}" for r in new]
    assert all(r.message.startswith(f"{flow}: ") and r.fix for r in named)


OUTSIDER_ROOT = "arn:aws:iam::999999999999:root"
MUST_DENY_BREAKS = [
    (
        "dev",
        "segregation-of-duties",
        "author-role",
        lambda d: edit_policy(d, "RolePolicy::author-permissions", flip_to_allow("SodAuthorsCannotApprove")),
    ),
    (
        "prod",
        "segregation-of-duties",
        "approver-role",
        lambda d: edit_policy(d, "RolePolicy::approver-permissions", flip_to_allow("SodApproversCannotDeploy")),
    ),
    (
        "prod",
        "phi-stays-inside",
        "phi-data",
        lambda d: edit_policy(
            d,
            "BucketPolicy::phi-data-policy",
            add_statement(
                {
                    "Sid": "Partner",
                    "Effect": "Allow",
                    "Principal": {"AWS": OUTSIDER_ROOT},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::clinops-prod-333333333333-phi-data/*",
                }
            ),
        ),
    ),
    (
        "staging",
        "phi-stays-inside",
        "phi-key",
        lambda d: edit_policy(
            d,
            "Key::phi-key",
            add_statement(
                {
                    "Sid": "Partner",
                    "Effect": "Allow",
                    "Principal": {"AWS": OUTSIDER_ROOT},
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                }
            ),
        ),
    ),
    (
        "prod",
        "keys-are-used-only-by-their-users",
        "root",
        lambda d: edit_policy(
            d,
            "Key::audit-key",
            add_statement(
                {
                    "Sid": "RootUse",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                }
            ),
        ),
    ),
    (
        "prod",
        "evidence-is-immutable",
        "deployer-role",
        # the role's grant alone is not enough: the bucket's append-only deny must go too
        lambda d: edit_policy(
            edit_policy(
                d,
                "RolePolicy::deployer-permissions",
                add_statement(
                    {
                        "Sid": "Tidy",
                        "Effect": "Allow",
                        "Action": "s3:DeleteObjectVersion",
                        "Resource": "arn:aws:s3:::clinops-prod-333333333333-evidence/*",
                    }
                ),
            ),
            "BucketPolicy::evidence-policy",
            drop_statement("DenyEvidenceDelete"),
        ),
    ),
    (
        "prod",
        "perimeter",
        "anonymous",
        lambda d: edit_policy(
            d,
            "BucketPolicy::data-capture-policy",
            add_statement(
                {
                    "Sid": "Public",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::clinops-prod-333333333333-data-capture/*",
                }
            ),
        ),
    ),
    (
        "dev",
        "perimeter",
        "outsider",
        lambda d: edit_policy(
            d,
            "ModelPackageGroupPolicy::readmission-risk-group-policy",
            add_statement(
                {
                    "Sid": "Partner",
                    "Effect": "Allow",
                    "Principal": {"AWS": OUTSIDER_ROOT},
                    "Action": "sagemaker:DescribeModelPackage",
                    "Resource": "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/*",
                }
            ),
            prop="resourcePolicy",
        ),
    ),
    (
        "staging",
        "perimeter",
        "outsider",
        lambda d: edit_policy(d, "VpcEndpoint::endpoint-sts", lambda p: p["Statement"][0].pop("Condition")),
    ),
    (
        "staging",
        "mlflow-tracking-stays-inside",
        "outsider",
        lambda d: edit_policy(d, MLFLOW_ENDPOINT, lambda p: p["Statement"][0].pop("Condition")),
    ),
    (
        "dev",
        "mlflow-tracking-stays-inside",
        "clinops-elsewhere-mlflow",
        # the role's grant and the endpoint's policy must both widen before another server is reachable
        lambda d: edit_policy(
            edit_policy(d, f"{RP}execution-permissions", set_resource("TrackExperiments", "*")),
            MLFLOW_ENDPOINT,
            set_resource("ThisStacksTrackingServerOnly", "*"),
        ),
    ),
    (
        "prod",
        "permissions-boundary",
        "iam:CreateRole",
        lambda d: edit_policy(d, "Policy::permissions-boundary", flip_to_allow("DenyIamEscalation")),
    ),
]


@pytest.mark.parametrize(("stack", "flow", "who", "mutate"), MUST_DENY_BREAKS, ids=_ids)
def test_each_must_deny_fails_when_a_policy_lets_it_through(stack: str, flow: str, who: str, mutate) -> None:
    new = newly_failed(stack, mutate(rendered(stack)))
    named = [r for r in new if r.rule_id == f"CLIN-DENY-{flow.upper()}" and (who in r.message or who in r.urn)]
    assert named, [f"{r.rule_id}: {r.message}" for r in new]
    assert all("must be denied but is allowed by" in r.message and r.severity == "critical" for r in named)


# ---------------------------------------------------------------------------------------------------------
def test_cross_account_promotion_needs_both_sides() -> None:
    """With the registry (dev) plan in the same run, the build account's bucket policy is the other half."""

    def grant_caller_side(doc: dict) -> dict:
        # main's execution role grants the caller side (ReadPromotedModels, DecryptPromotedModels by the registry
        # key's alias: KMS puts the key's aliases, from the owning plan, in the request)
        return doc

    def promotion_get(results: list[CheckResult]) -> list[CheckResult]:
        return [r for r in failed(results) if r.rule_id == "CLIN-ACCESS-PROMOTION" and " s3:GetObject " in r.message]

    def promotion_decrypt(results: list[CheckResult]) -> list[CheckResult]:
        return [r for r in failed(results) if r.rule_id == "CLIN-ACCESS-PROMOTION" and " kms:Decrypt " in r.message]

    staging = grant_caller_side(rendered("staging"))
    both = judge(rendered("dev"), staging)["staging"]
    assert not promotion_get(both) and not promotion_decrypt(both)
    dev = edit_policy(rendered("dev"), "BucketPolicy::model-artifacts-policy", drop_statement("PromotionAccountsRead"))
    assert promotion_get(judge(dev, staging)["staging"])
    # alone (CI gates one stack per job), staging's side is judged, the key's aliases taken from the platform's
    # naming, and the report says the other side was not seen
    alone = judge(grant_caller_side(rendered("staging")))["staging"]
    assert not promotion_get(alone) and not promotion_decrypt(alone)
    other_alias = edit_policy(
        grant_caller_side(rendered("staging")),
        "RolePolicy::execution-permissions",
        lambda p: next(st for st in p["Statement"] if st.get("Sid") == "DecryptPromotedModels")["Condition"][
            "ForAnyValue:StringEquals"
        ].update({"kms:ResourceAliases": "alias/clinops-dev-phi"}),
    )
    assert promotion_decrypt(judge(other_alias)["staging"])
    report = access_engine.scan_plans([parse_plan(grant_caller_side(rendered("staging")))])[0]
    assert any("caller side only" in note for note in report.notes)


def test_the_gate_carries_access_findings_into_verdict_bundle_sarif_and_junit(tmp_path: Path) -> None:
    doc = rendered("prod")
    edit_policy(doc, f"{RP}execution-permissions", drop_statement("DeploymentGuardrailAlarms"))
    (verdict,) = run_gates([(parse_plan(doc), dumps(doc))], engines=["access"])
    assert not verdict.passed  # a flow the endpoint needs is no longer allowed
    access = next(r for r in verdict.reports if r.engine == "access")
    assert access.seconds > 0 and any("IAM simulations" in n for n in access.notes)
    write_bundle(verdict, tmp_path)
    sarif = json.loads((tmp_path / "findings.sarif").read_text())
    rules = {res["ruleId"] for run in sarif["runs"] for res in run["results"]}
    assert "CLIN-ACCESS-ENDPOINT" in rules
    assert "CLIN-ACCESS-ENDPOINT" in (tmp_path / "junit.xml").read_text()


# ---------------------------------------------------------------------------------------------------------
# plan checks that need no evaluator
def test_data_flow_writer_key_and_producer_checks_follow_the_plan() -> None:
    phi_keyed = rendered("prod")
    phi_step = _step(phi_keyed, "Pipeline::readmission-risk-drift-pipeline")
    phi_definition = json.loads(phi_step["newState"]["inputs"]["pipelineDefinition"])
    for s in phi_definition["Steps"]:
        if s["Name"] in ("DriftMerge", "QualityBacktest"):
            s["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"] = "arn:aws:kms:us-east-1:333333333333:key/phi-key"
    phi_step["newState"]["inputs"]["pipelineDefinition"] = json.dumps(phi_definition)
    doc = rendered("prod")
    step = _step(doc, "Pipeline::readmission-risk-drift-pipeline")
    definition = json.loads(step["newState"]["inputs"]["pipelineDefinition"])
    for s in definition["Steps"]:
        if s["Name"] in ("DriftMerge", "QualityBacktest"):
            s["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"] = (
                "arn:aws:kms:us-east-1:333333333333:key/artifacts-key"
            )
    step["newState"]["inputs"]["pipelineDefinition"] = json.dumps(definition)
    doc["steps"].append(
        {
            "op": "create",
            "urn": "urn:pulumi:prod::clinops::aws:s3/bucketObjectv2:BucketObjectv2::baseline",
            "newState": {
                "type": "aws:s3/bucketObjectv2:BucketObjectv2",
                "custom": True,
                "inputs": {
                    "bucket": "clinops-prod-333333333333-model-artifacts",
                    "key": "readmission-risk/baseline/baseline.json",
                    "kmsKeyId": "arn:aws:kms:us-east-1:333333333333:key/artifacts-key",
                },
            },
        }
    )
    # without the catalogue's word that release publishes the baseline, only a plan object can produce it
    shipped_catalogue = access_engine.load_catalogue()
    catalogue = dataclasses.replace(
        shipped_catalogue, sources=[s for s in shipped_catalogue.sources if "/baseline/" not in s[0]]
    )
    shipped_results = access_engine.data_flow_results(shipped_catalogue, build_model(parse_plan(rendered("prod"))))
    assert not failed(shipped_results)
    # the reports written with the PHI key (issue 11 defect 8) and a baseline nobody publishes both fail
    broken = access_engine.data_flow_results(catalogue, build_model(parse_plan(phi_keyed)))
    assert [r for r in failed(broken) if r.rule_id == "CLIN-DATAFLOW-KEY"]
    assert [r for r in failed(broken) if r.rule_id == "CLIN-DATAFLOW-SOURCE"]
    after = access_engine.data_flow_results(catalogue, build_model(parse_plan(doc)))
    for rule in ("CLIN-DATAFLOW-KEY", "CLIN-DATAFLOW-SOURCE"):
        assert not [r for r in failed(after) if r.rule_id == rule], rule


def test_lambda_order_and_security_group_checks_fail_on_the_issue_defects() -> None:
    shipped_model = build_model(parse_plan(rendered("dev")))
    assert not failed(access_engine.ordering_results(shipped_model))
    assert not failed(access_engine.security_group_results(shipped_model))
    # issue 11 defects 4 and 11: Lambdas created before their role's policies, inline egress beside egress rules
    doc = rendered("dev")
    lambdas = 0
    for step in doc["steps"]:
        state = step["newState"]
        if state["type"] == "aws:lambda/function:Function":
            lambdas += 1
            state["dependencies"] = [
                urn for urn in state.get("dependencies") or [] if "aws:iam/rolePolicy:RolePolicy" not in urn
            ]
    _step(doc, "SecurityGroup::workload-security-group")["newState"]["inputs"]["egress"] = [
        {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}
    ]
    model = build_model(parse_plan(doc))
    assert len(failed(access_engine.ordering_results(model))) == lambdas
    assert failed(access_engine.security_group_results(model))


# ---------------------------------------------------------------------------------------------------------
# unusable input: a clear message, never a traceback or a pass
def test_a_broken_catalogue_names_the_entry_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "intents.yaml"
    bad.write_text("flows:\n  deploy:\n    intents:\n      - {principal: role:x, action: s3:GetObject, colour: red}\n")
    with pytest.raises(access_engine.CatalogueError, match=r"flows.deploy.intents\[0\]: unknown field\(s\) colour"):
        access_engine.load_catalogue(bad)
    bad.write_text("flows:\n  deploy:\n    intents:\n      - {principal: nobody, action: s3:GetObject, resource: x}\n")
    with pytest.raises(access_engine.CatalogueError, match="principal 'nobody' is not"):
        access_engine.load_catalogue(bad)


def test_an_intent_naming_what_the_plan_lacks_fails_instead_of_passing(tmp_path: Path) -> None:
    catalogue = tmp_path / "intents.yaml"
    catalogue.write_text(
        "flows:\n  deploy:\n    intents:\n"
        "      - {principal: role:execution-role, action: s3:GetObject, resource: 'arn:aws:s3:::{bucket:nope}/x'}\n"
    )
    model = build_model(parse_plan(rendered("dev")))
    (check,) = access_engine.expand(access_engine.load_catalogue(catalogue), model, {model.account: model})
    result = access_engine.judge(check, None)
    assert result.status == "failed" and "the plan has no bucket 'nope'" in result.message


def test_a_missing_evaluator_fails_the_gate_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(iam_evaluator, "PACKAGE", tmp_path / "absent")
    (report,) = access_engine.scan_plans([parse_plan(rendered("staging"))])
    (result,) = report.results
    assert result.status == "failed" and "make venv" in result.message


def test_accounts_models_and_deployers_come_from_the_bound_stack_facts() -> None:
    """The gate binds the stack's own Pulumi.<stack>.yaml from outside the plan; the engine believes that, not
    what the plan says about itself."""
    plan = parse_plan(rendered("staging"))
    plan.config = {k: v for k, v in plan.config.items() if k not in ("clinops:models", "clinops:principals")}
    unbound = build_model(plan)
    assert not unbound.models and not unbound.deployers
    bound = build_model(bind_stack(plan, "staging"))
    assert bound.models == ["readmission-risk", "sepsis-warning"]
    assert bound.served_models and set(bound.packages) == set(bound.served_models)
    assert bound.deployers and bound.deploy_identity == bound.deployers[0]
    assert bound.registry_account == "111111111111" != bound.account


def test_mlflow_tracking_is_proven_on_the_server_through_its_endpoint() -> None:
    """The TrackRun flow: every call the plugin makes, as the execution role, on this stack's server, from the
    MLflow endpoint (whose policy is in the simulation), and nothing of it in stacks without pipelines."""
    results = {stack: [r for r in found if "MLFLOW" in r.rule_id] for stack, found in shipped().items()}
    allowed = [r for r in results["dev"] if r.rule_id == "CLIN-ACCESS-MLFLOW-TRACKING"]
    assert len(allowed) == 14 and all(r.status == "passed" for r in allowed)
    assert all(r.status == "passed" for r in results["dev"] + results["staging"] + results["prod"])
    assert not [r for r in results["prod"] if r.rule_id == "CLIN-ACCESS-MLFLOW-TRACKING"]  # no pipeline there
    catalogue = access_engine.load_catalogue()
    calls = [i for i in catalogue.intents if i.flow == "mlflow-tracking" and i.action.startswith("sagemaker-mlflow:")]
    assert {i.via for i in calls} == {"sagemaker.experiments"} and {i.resource for i in calls} == {"{tracking_server}"}
    assert all(i.principal == "role:execution-role" and "aws:SourceVpce" in i.context for i in calls)


def test_a_policy_the_engine_cannot_read_is_named_in_the_report_notes() -> None:
    """What the engine could not read while it built the checks (here a role policy that is not JSON) is said in
    the report, so the evidence shows which flows were judged without that document."""
    doc = rendered("prod")
    _step(doc, f"{RP}execution-permissions")["newState"]["inputs"]["policy"] = "{not json"
    report = access_engine.scan_plans([parse_plan(doc)])[0]
    assert any("execution-permissions input 'policy' is not JSON" in note for note in report.notes)
    clean = access_engine.scan_plans([parse_plan(rendered("prod"))])[0]
    assert not any("is not JSON" in note or "not a readable policy" in note for note in clean.notes)
