"""The CDS Hooks service's own flows in the access intents (policies/intents.yaml `cds-hooks` and
`cds-hooks-isolation`): the EHR reaches the API only through the execute-api VPC endpoint, API Gateway invokes the
model's function, and the function's role may do what the service does and nothing beyond it. Removing any one
grant fails the gate naming the flow; loosening any one guard fails a must-deny."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from policies.engines import access_engine
from policies.engines.access_model import build_model
from policies.plan import parse_plan
from tests.conftest import rendered
from tests.policies.test_access_engine import (
    _ids,
    _step,
    add_statement,
    drop_statement,
    edit_policy,
    failed,
    newly_failed,
    remove_step,
    shipped,
)

RP, CDS = "RolePolicy::", "cds-readmission-risk-permissions"
FLOW, ISOLATION = "CLIN-ACCESS-CDS-HOOKS", "CLIN-DENY-CDS-HOOKS-ISOLATION"


def test_the_shipped_stacks_prove_every_cds_flow_and_must_deny() -> None:
    for stack, results in shipped().items():
        cds = [r for r in results if r.rule_id in (FLOW, ISOLATION)]
        assert len([r for r in cds if r.rule_id == FLOW]) >= 15, stack
        assert len([r for r in cds if r.rule_id == ISOLATION]) >= 15, stack
        assert not failed(cds), [r.message for r in failed(cds)]


def test_the_cds_flow_follows_the_models_with_a_cds_function() -> None:
    """Expanded per served model with a `cds` section (from the stack's config): no function, no intents."""
    doc = rendered("dev")
    assert build_model(parse_plan(doc)).cds_models == ["readmission-risk"]
    doc["config"].pop("clinops:cds")
    plan = parse_plan(doc)
    assert build_model(plan).cds_models == []
    checks = access_engine.expand(access_engine.load_catalogue(), build_model(plan), {})
    assert not [c for c in checks if c.flow.startswith("cds-hooks")]


def test_the_ehr_is_modelled_unsigned_through_the_execute_api_endpoint() -> None:
    model = build_model(parse_plan(rendered("prod")))
    checks = access_engine.expand(access_engine.load_catalogue(), model, {model.account: model})
    ehr = [c for c in checks if c.flow == "cds-hooks" and c.action == "execute-api:Invoke"]
    assert len(ehr) == 1 and ehr[0].principal_kind == "anonymous"
    assert ehr[0].simulation and ehr[0].simulation["request"]["principal"] == {"type": "Anonymous"}
    assert ehr[0].context["aws:SourceVpce"].startswith("vpce-") and "aws:PrincipalArn" not in ehr[0].context
    assert ehr[0].via_endpoint is not None and ehr[0].via_endpoint.name == "endpoint-execute-api"


def drop_principal(sid: str, fragment: str) -> Callable[[dict], None]:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s.get("Sid") == sid)
        for operator in statement["Condition"].values():
            if "aws:PrincipalArn" in operator:
                kept = [a for a in operator["aws:PrincipalArn"] if fragment not in a]
                assert len(kept) < len(operator["aws:PrincipalArn"]), (sid, fragment)
                operator["aws:PrincipalArn"] = kept

    return change


def drop_both_post_permissions(doc: dict) -> dict:
    for name in ("cds-readmission-risk-hook-post-invoke", "cds-readmission-risk-feedback-post-invoke"):
        remove_step(doc, f"Permission::{name}")
    return doc


GRANT_REMOVALS = [
    # (stack, action the finding names, resource to change, change; None removes the resource)
    ("dev", "sagemaker:InvokeEndpoint", f"{RP}{CDS}", drop_statement("InvokeOnlyItsModel")),
    ("prod", "sagemaker:InvokeEndpoint", "VpcEndpoint::endpoint-sagemaker-runtime", None),
    ("staging", "ssm:GetParameter", f"{RP}{CDS}", drop_statement("ReadItsGuardrailRecords")),
    ("prod", "cloudwatch:DescribeAlarms", f"{RP}{CDS}", drop_statement("ReadItsAlarms")),
    ("dev", "cloudwatch:PutMetricData", f"{RP}{CDS}", drop_statement("PutOverrideMetric")),
    # KMS: a key policy naming the role grants it alone (the IAM statement is the second, redundant half), so the
    # key policies are what can break
    ("staging", "kms:GenerateMac", "Key::cds-encounter-mac-key", drop_statement("CdsFunctionsHashEncounters")),
    ("dev", "s3:PutObject", f"{RP}{CDS}", drop_statement("RecordAndReadIssuedCards")),
    ("prod", "s3:PutObject", f"{RP}{CDS}", drop_statement("AppendEvidence")),
    ("dev", "kms:GenerateDataKey", "Key::audit-key", drop_principal("EvidenceWritingFunctions", "cds-readmission")),
    ("staging", "kms:GenerateMac", f"{RP}{CDS}", drop_statement("SealEvidence")),
    ("prod", "ssm:PutParameter", f"{RP}{CDS}", drop_statement("PublishEvidenceHead")),
    ("dev", "logs:PutLogEvents", f"{RP}{CDS}", drop_statement("WriteOwnLogs")),
    ("staging", "xray:PutTraceSegments", f"{RP}{CDS}", drop_statement("WriteTraces")),
    ("prod", "execute-api:Invoke", "VpcEndpoint::endpoint-execute-api", drop_statement("EhrCallsThisAccountsApis")),
    ("dev", "execute-api:Invoke", "RestApiPolicy::cds-api-policy", drop_statement("OnlyThroughThePlatformEndpoint")),
    ("staging", "execute-api:Invoke", "VpcEndpoint::endpoint-execute-api", None),
]


@pytest.mark.parametrize(("stack", "action", "target", "change"), GRANT_REMOVALS, ids=_ids)
def test_removing_a_grant_the_cds_flow_needs_fails_naming_the_flow(
    stack: str, action: str, target: str, change: Callable[[dict], None] | None
) -> None:
    doc = remove_step(rendered(stack), target) if change is None else edit_policy(rendered(stack), target, change)
    new = newly_failed(stack, doc)
    named = [r for r in new if r.rule_id == FLOW and f" {action} " in r.message]
    assert named, [f"{r.rule_id}: {r.message}" for r in new]
    assert all(r.message.startswith("cds-hooks: ") and r.fix for r in named)


def test_api_gateway_must_have_its_invoke_permission() -> None:
    new = newly_failed("prod", drop_both_post_permissions(rendered("prod")))
    named = [r for r in new if r.rule_id == FLOW and " lambda:InvokeFunction " in r.message]
    assert named and "apigateway.amazonaws.com" in named[0].message


def _widen_endpoint(doc: dict) -> dict:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s["Sid"] == "InvokeOnlyItsModel")
        statement["Resource"] = statement["Resource"].rsplit("/", 1)[0] + "/*"

    return edit_policy(doc, f"{RP}{CDS}", change)


def _open_api(doc: dict) -> dict:
    def change(policy: dict) -> None:
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "DenyAnyOtherPath"]
        policy["Statement"][0].pop("Condition")

    return edit_policy(doc, "RestApiPolicy::cds-api-policy", change)


def _any_source(doc: dict) -> dict:
    for step in doc["steps"]:
        if step["urn"].endswith("-post-invoke") and "cds-readmission-risk" in step["urn"]:
            step["newState"]["inputs"].pop("sourceArn")
    return doc


def _share_encounter_key(doc: dict) -> dict:
    def change(policy: dict) -> None:
        statement = next(s for s in policy["Statement"] if s["Sid"] == "CdsFunctionsHashEncounters")
        arns = statement["Condition"]["StringEquals"]["aws:PrincipalArn"]
        lookalike = arns[0].rsplit("/", 1)[0] + "/clinops-dev-lookalike"
        statement["Condition"]["StringEquals"]["aws:PrincipalArn"] = [*arns, lookalike]

    return edit_policy(doc, "Key::cds-encounter-mac-key", change)


def _statement(sid: str, actions: list[str], resource: str) -> Callable[[dict], None]:
    return add_statement({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})


MUST_DENY_BREAKS = [
    # (stack, what the finding names, mutation)
    ("dev", "endpoint/clinops-dev-another-model", _widen_endpoint),
    (
        "prod",
        "sagemaker:UpdateEndpoint",
        lambda d: edit_policy(
            d, f"{RP}{CDS}", _statement("Tamper", ["sagemaker:UpdateEndpoint"], "arn:aws:sagemaker:*:*:endpoint/*")
        ),
    ),
    (
        "staging",
        "phi-data",
        lambda d: edit_policy(
            d, f"{RP}{CDS}", _statement("ReadPhi", ["s3:GetObject"], "arn:aws:s3:::clinops-staging-222222222222-*/*")
        ),
    ),
    (
        "dev",
        "cds-issued/dev/another-model",
        lambda d: edit_policy(
            d,
            f"{RP}{CDS}",
            _statement("ReadAllCards", ["s3:GetObject"], "arn:aws:s3:::clinops-dev-111111111111-evidence/cds-issued/*"),
        ),
    ),
    ("prod", "execute-api:Invoke", _open_api),
    ("staging", "lambda:InvokeFunction", _any_source),
    ("dev", "clinops-dev-lookalike kms:GenerateMac", _share_encounter_key),
]


@pytest.mark.parametrize(("stack", "what", "mutate"), MUST_DENY_BREAKS, ids=_ids)
def test_each_cds_must_deny_fails_when_a_policy_lets_it_through(stack: str, what: str, mutate) -> None:
    new = newly_failed(stack, mutate(rendered(stack)))
    named = [r for r in new if r.rule_id == ISOLATION and what in r.message]
    assert named, [f"{r.rule_id}: {r.message}" for r in new]
    assert all("must be denied but is allowed by" in r.message and r.severity == "critical" for r in named)


def test_an_open_api_also_fails_the_perimeter() -> None:
    new = newly_failed("dev", _open_api(rendered("dev")))
    assert [r for r in new if r.rule_id == "CLIN-DENY-PERIMETER" and "execute-api:Invoke" in r.message]


def test_the_encounter_key_arn_is_told_apart_from_the_keys_named_beside_it() -> None:
    """The encounter key is only ever named beside other keys (the CDS role's policy, the function's
    environment): its ARN is the one left once the other keys' own ARNs are set aside."""
    model = build_model(parse_plan(rendered("staging")))
    arns = {p: model.key_arn(p) for p in ("audit", "evidence-mac", "cds-encounter-mac", "logs", "phi", "artifacts")}
    assert len(set(arns.values())) == len(arns)
    assert arns["cds-encounter-mac"] == "arn:aws:kms:us-east-1:222222222222:key/cds-encounter-mac-key"
    assert _step(rendered("staging"), "Key::cds-encounter-mac-key")


def test_a_declared_principal_needs_an_arn_or_to_be_anonymous(tmp_path: Path) -> None:
    bad = tmp_path / "intents.yaml"
    bad.write_text("principals:\n  ehr: {why: the EHR}\nflows: {}\n")
    with pytest.raises(access_engine.CatalogueError, match=r"principals.ehr: needs 'arn' .* or 'anonymous: true'"):
        access_engine.load_catalogue(bad)
    bad.write_text("principals:\n  ehr: {anonymous: true}\nflows: {}\n")
    assert access_engine.load_catalogue(bad).principals["ehr"] == {"anonymous": True}
