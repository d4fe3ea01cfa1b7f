"""The CDS Hooks API in every stack's plan: private, reachable only through the platform's execute-api VPC
endpoint, logged to a KMS log group without bodies, throttled; each model's function may invoke only its
model's endpoint, discovery none."""

from __future__ import annotations

import json

import pytest

from tests.conftest import rendered


def named(plan: dict, suffix: str) -> dict:
    return next(s["newState"] for s in plan["steps"] if s["urn"].endswith(suffix))


def of_type(plan: dict, type_: str) -> list[dict]:
    return [s["newState"] for s in plan["steps"] if s["newState"]["type"] == type_]


@pytest.fixture(params=["dev", "staging", "prod"])
def plan(request: pytest.FixtureRequest) -> dict:
    return rendered(request.param)  # a copy: a test may break it


def exposure(plan: dict) -> list[str]:
    """Every way the CDS API could be reached other than through the platform's execute-api VPC endpoint."""
    api = named(plan, "::cds-api")["inputs"]
    endpoint = named(plan, "::endpoint-execute-api")["inputs"]
    problems = []
    if api["endpointConfiguration"]["types"] != "PRIVATE":
        problems.append("the API is not PRIVATE")
    if not (endpoint["serviceName"].endswith(".execute-api") and endpoint["privateDnsEnabled"]):
        problems.append("no private execute-api endpoint")
    endpoint_id = api["endpointConfiguration"]["vpcEndpointIds"][0]
    for statement in json.loads(named(plan, "::cds-api-policy")["inputs"]["policy"])["Statement"]:
        wanted = {"Allow": "StringEquals", "Deny": "StringNotEquals"}[statement["Effect"]]
        if statement.get("Condition") != {wanted: {"aws:SourceVpce": endpoint_id}}:
            problems.append(f"{statement['Sid']}: not bound to the platform's endpoint")
        if not str(statement["Resource"]).startswith("arn:aws:execute-api:"):
            problems.append(f"{statement['Sid']}: resource is not the API")
    return problems


def test_the_api_is_private_and_admits_only_the_platforms_endpoint(plan: dict) -> None:
    assert exposure(plan) == []
    policy = named(plan, "::cds-api-policy")["inputs"]
    doc = json.loads(policy["policy"])
    doc["Statement"][0].pop("Condition")
    policy["policy"] = json.dumps(doc)
    assert exposure(plan) == ["OnlyThroughThePlatformEndpoint: not bound to the platform's endpoint"]


def test_access_logs_go_to_a_kms_log_group_without_bodies_and_the_stage_throttles(plan: dict) -> None:
    stage = named(plan, "::cds-api-stage")["inputs"]
    group = named(plan, "::cds-api-access-logs")["inputs"]
    assert stage["accessLogSettings"]["destinationArn"].endswith(group["name"]) and group["kmsKeyId"]
    fmt = stage["accessLogSettings"]["format"]
    assert "$context.resourcePath" in fmt and "$context.path" not in fmt and "requestBody" not in fmt
    settings = named(plan, "::cds-api-throttling")["inputs"]["settings"]
    assert settings["throttlingRateLimit"] > 0 and settings["throttlingBurstLimit"] > 0
    assert settings["dataTraceEnabled"] is False


def test_each_function_runs_in_the_vpc_and_may_invoke_only_its_models_endpoint(plan: dict) -> None:
    functions = [
        f for f in of_type(plan, "aws:lambda/function:Function") if f["urn"].split("::")[-1].startswith("cds-")
    ]
    assert {f["urn"].split("::")[-1] for f in functions} >= {"cds-discovery", "cds-readmission-risk"}
    for function in functions:
        assert function["inputs"]["vpcConfig"]["subnetIds"] and function["inputs"]["kmsKeyArn"]
        name = function["urn"].split("::")[-1]
        doc = json.loads(named(plan, f"::{name}-permissions")["inputs"]["policy"])
        invoke = [s for s in doc["Statement"] if any(a.startswith("sagemaker:") for a in s["Action"])]
        if name == "cds-discovery":
            assert invoke == []
            continue
        model = name.removeprefix("cds-")
        (statement,) = invoke
        assert statement["Action"] == ["sagemaker:InvokeEndpoint"]
        assert ":endpoint/clinops-" in statement["Resource"] and statement["Resource"].endswith(f"-{model}")


def test_the_override_rate_alarm_is_the_one_the_service_reads_and_pages(plan: dict) -> None:
    from clinops.names import cds_alarm_names

    alarms = {a["inputs"]["name"]: a["inputs"] for a in of_type(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    stack = named(plan, "::cds-api-stage")["inputs"]["tags"]["clinops:stack"]
    for model in ("readmission-risk",):
        name = next(n for n in cds_alarm_names(stack, model) if n.endswith("-override-rate"))
        alarm = alarms[name]
        judged = next(q for q in alarm["metricQueries"] if q.get("returnData"))
        assert judged["expression"].startswith("IF(feedback >= ") and alarm["threshold"] == 0.5
        assert alarm["alarmActions"] and alarm["treatMissingData"] == "notBreaching"


def test_the_model_function_may_seal_feedback_evidence(plan: dict) -> None:
    """Feedback is evidence: the function gets the HMAC key and the head parameter, and the keys' own policies
    (which KMS consults first) name its role among the evidence writers."""
    from clinops.names import cds_function_name

    stack = plan["steps"][0]["urn"].split(":")[2]  # urn:pulumi:<stack>::clinops::...
    functions = [
        f
        for f in of_type(plan, "aws:lambda/function:Function")
        if f["inputs"]["name"].endswith("-cds-readmission-risk")
    ]
    [function] = functions  # every shipped stack serves readmission-risk through CDS Hooks
    assert function["inputs"]["environment"]["variables"]["EVIDENCE_MAC_KEY_ID"]
    role_name = function["inputs"]["name"]
    assert role_name == cds_function_name(stack, "readmission-risk")
    permissions = json.loads(named(plan, "::cds-readmission-risk-permissions")["inputs"]["policy"])
    actions = {
        a for s in permissions["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert {"kms:GenerateMac", "ssm:PutParameter", "s3:PutObject"} <= actions
    for key in ("audit-key", "evidence-mac-key"):
        policy = named(plan, f"::{key}")["inputs"]["policy"]
        assert f":role/{role_name}" in policy, f"{key} does not name {role_name}"


def test_encounter_ids_are_hashed_by_a_stack_key_only_the_cds_functions_may_use(plan: dict) -> None:
    """No operator-made secret: the stack creates an HMAC key for encounter ids, and its policy lets the models'
    CDS roles (and nobody else) GenerateMac with it; the function is told the key, not a parameter to read."""
    key = named(plan, "::cds-encounter-mac-key")["inputs"]
    assert key["customerMasterKeySpec"] == "HMAC_256" and key["keyUsage"] == "GENERATE_VERIFY_MAC"
    statements = json.loads(key["policy"])["Statement"]
    users = [s for s in statements if s["Sid"] not in ("KeyAdministration", "KeyPolicyChanges")]
    assert [s["Sid"] for s in users] == ["CdsFunctionsHashEncounters"]
    (use,) = users
    assert use["Action"] == ["kms:GenerateMac"]
    roles = use["Condition"]["StringEquals"]["aws:PrincipalArn"]
    assert [r.rsplit("/", 1)[1].split("-", 2)[2] for r in roles] == ["cds-readmission-risk"]
    assert use["Condition"]["StringEquals"]["kms:MacAlgorithm"] == "HMAC_SHA_256"
    function = named(plan, "::cds-readmission-risk")["inputs"]["environment"]["variables"]
    assert function["ENCOUNTER_MAC_KEY_ID"].endswith(":key/cds-encounter-mac-key")
    assert not [v for v in function if "HASH_KEY" in v]
    assert "cds-hash-key" not in json.dumps(plan)
    permissions = json.loads(named(plan, "::cds-readmission-risk-permissions")["inputs"]["policy"])
    hashing = next(s for s in permissions["Statement"] if s["Sid"] == "HashEncounterIds")
    assert hashing["Resource"].endswith(":key/cds-encounter-mac-key") and hashing["Action"] == ["kms:GenerateMac"]
    records = next(s for s in permissions["Statement"] if s["Sid"] == "RecordAndReadIssuedCards")
    stack = plan["steps"][0]["urn"].split(":")[2]
    assert records["Resource"].endswith(f"-evidence/cds-issued/{stack}/readmission-risk/*")


def test_without_a_served_cds_model_there_is_no_encounter_key() -> None:
    from clinops.config import load_from_stack_file
    from infra.base import Platform
    from infra.keys import cds_role_arns
    from tests.conftest import REPO

    config = load_from_stack_file("dev", REPO)
    assert cds_role_arns(Platform(config)) == [
        f"arn:aws:iam::{config.account_id}:role/clinops-dev-cds-readmission-risk"
    ]
    unserved = config.model_copy(update={"models": [m.model_copy(update={"package_arn": None}) for m in config.models]})
    assert cds_role_arns(Platform(unserved)) == []
    assert cds_role_arns(Platform(config.model_copy(update={"cds": None}))) == []
