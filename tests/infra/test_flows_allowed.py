"""The platform's own flows are allowed by the rendered plan — and what must stay denied stays denied.

Issue 11's twelve defects and security findings, each as a question to the plan: "may this principal do this
action on this resource, in this request context?" answered from the rendered key, bucket and IAM policies.
`allows` below is a deliberately small statement matcher for these questions (exact condition operators the
platform uses); the gate's allow-side engine evaluates the full catalogue with a real IAM evaluator.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from clinops.config import INTERFACE_ENDPOINT_SERVICES
from clinops.names import ROLLBACK_ALARM_SUFFIXES, alarm_name
from tests.conftest import rendered

Plan = dict[str, Any]
Doc = dict[str, Any]
STACKS = ("dev", "staging", "prod")
REGION = "us-east-1"
BUILD_ACCOUNT = "111111111111"


# --- the plan ---------------------------------------------------------------------------------------------------
def states(plan: Plan, type_: str) -> list[dict]:
    return [s["newState"] for s in plan["steps"] if s["newState"]["type"] == type_]


def state(plan: Plan, suffix: str) -> dict:
    matches = [s["newState"] for s in plan["steps"] if s["urn"].endswith(suffix)]
    assert len(matches) == 1, f"{suffix}: {len(matches)} resources"
    return matches[0]


def document(plan: Plan, suffix: str, prop: str = "policy") -> Doc:
    return json.loads(state(plan, suffix)["inputs"][prop])


def account(plan: Plan) -> str:
    return plan["config"]["clinops:accountId"]


def stack_of(plan: Plan) -> str:
    return state(plan, "aws:kms/key:Key::logs-key")["urn"].split("::")[0].split(":")[-1]


def role(plan: Plan, name: str) -> str:
    return f"arn:aws:iam::{account(plan)}:role/clinops-{stack_of(plan)}-{name}"


def deploy_identity(plan: Plan) -> str:
    return json.loads(plan["config"]["clinops:principals"])["deployers"][0]


def key_policy(plan: Plan, purpose: str) -> Doc:
    return document(plan, f"aws:kms/key:Key::{purpose}-key")


def key_arn(plan: Plan, purpose: str) -> str:
    return f"arn:aws:kms:{REGION}:{account(plan)}:key/{purpose}-key"


def identity(plan: Plan, policy_suffix: str) -> Doc:
    return document(plan, f"aws:iam/rolePolicy:RolePolicy::{policy_suffix}")


def boundary(plan: Plan) -> Doc:
    return document(plan, "aws:iam/policy:Policy::permissions-boundary")


# --- a small statement matcher ----------------------------------------------------------------------------------
def _list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _principal_matches(statement: dict, principal: str) -> bool:
    if "Principal" not in statement:
        return True  # identity policy: it belongs to the caller
    declared = statement["Principal"]
    if declared == "*":
        return True
    if principal.endswith(".amazonaws.com"):
        return principal in _list(declared.get("Service", []))
    for p in _list(declared.get("AWS", [])):
        caller_account = principal.split(":")[4]
        # an account root in a resource policy delegates to that account's IAM (the caller's IAM is assumed)
        if p == "*" or p == principal or p == f"arn:aws:iam::{caller_account}:root":
            return True
    return False


def _condition_holds(condition: dict, context: dict[str, Any]) -> bool:
    for operator, entries in condition.items():
        for key, expected in entries.items():
            actual = context.get(key)
            base = operator.removesuffix("IfExists")
            if actual is None:
                if operator == "Null":
                    if str(expected).lower() != "true":
                        return False
                    continue
                if operator.endswith("IfExists") or base.startswith("StringNot") or base.startswith("ArnNot"):
                    continue
                return False
            if operator == "Null":
                if str(expected).lower() == "true":
                    return False
                continue
            values = [str(v) for v in _list(actual)]
            wanted = [str(v) for v in _list(expected)]
            if base in ("StringEquals", "ArnEquals", "ForAnyValue:StringEquals"):
                hit = any(v in wanted for v in values)
            elif base in ("StringLike", "ArnLike", "ForAnyValue:StringLike"):
                hit = any(_like(w, v) for v in values for w in wanted)
            elif base == "StringNotEquals":
                hit = not any(v in wanted for v in values)
            elif base == "Bool":
                hit = any(v.lower() == w.lower() for v in values for w in wanted)
            elif base == "NumericLessThan":
                hit = any(float(v) < float(w) for v in values for w in wanted)
            else:
                raise AssertionError(f"operator {operator} not modelled: extend the matcher")
            if not hit:
                return False
    return True


def _applies(statement: dict, principal: str, action: str, resource: str, context: dict) -> bool:
    return (
        _principal_matches(statement, principal)
        and any(_like(a, action, case=False) for a in _list(statement.get("Action", [])))
        and any(_like(r, resource) for r in _list(statement.get("Resource", "*")))
        and _condition_holds(statement.get("Condition", {}), context)
    )


def allows(doc: Doc, principal: str, action: str, resource: str = "*", **context: Any) -> bool:
    """An Allow applies and no Deny does. `context` keys use `__` for `:` (kms__ViaService)."""
    ctx = {k.replace("__", ":"): v for k, v in context.items()}
    ctx.setdefault("aws:PrincipalArn", principal)
    if principal.startswith("arn:aws:iam::"):
        ctx.setdefault("kms:CallerAccount", principal.split(":")[4])
    applying = [s for s in doc["Statement"] if _applies(s, principal, action, resource, ctx)]
    return any(s["Effect"] == "Allow" for s in applying) and not any(s["Effect"] == "Deny" for s in applying)


def role_may(plan: Plan, policy: str, principal: str, action: str, resource: str, **context: Any) -> bool:
    """Identity side of a role: its own policy and the permissions boundary must both allow."""
    return allows(identity(plan, policy), principal, action, resource, **context) and allows(
        boundary(plan), principal, action, resource, **context
    )


def via(service: str) -> dict[str, str]:
    return {"kms__ViaService": f"{service}.{REGION}.amazonaws.com"}


FOR_AWS_RESOURCE = {"kms__GrantIsForAWSResource": "true"}


# --- 1. the deploy identity and the roles that use each key; root administers but never uses -----------------
@pytest.mark.parametrize("stack", STACKS)
def test_deploy_identity_may_create_what_uses_the_keys(stack: str) -> None:
    plan = rendered(stack)
    deployer = deploy_identity(plan)
    # contract upload (SSE-KMS, artifacts key) and KMS-encrypted ECR repositories
    assert allows(key_policy(plan, "artifacts"), deployer, "kms:GenerateDataKey", **via("s3"))
    # Lambda functions with kms_key_arn: CreateGrant, Encrypt, Decrypt (Lambda's documented needs)
    logs = key_policy(plan, "logs")
    assert allows(logs, deployer, "kms:CreateGrant", **FOR_AWS_RESOURCE)
    assert allows(logs, deployer, "kms:Encrypt", **via("lambda"))
    assert allows(logs, deployer, "kms:Decrypt", **via("lambda"))
    # endpoints (volume key, capture key) and the Studio domain: SageMaker's grants on the deployer's behalf
    for purpose in ("artifacts", "phi"):
        assert allows(key_policy(plan, purpose), deployer, "kms:CreateGrant", **FOR_AWS_RESOURCE)
    # KMS's lockout check: whoever creates or updates the key keeps the right to change its policy
    for purpose in ("phi", "artifacts", "logs", "audit"):
        assert allows(key_policy(plan, purpose), deployer, "kms:PutKeyPolicy")


@pytest.mark.parametrize("stack", STACKS)
def test_root_and_unnamed_roles_administer_but_never_use(stack: str) -> None:
    plan = rendered(stack)
    root = f"arn:aws:iam::{account(plan)}:root"
    intruder = f"arn:aws:iam::{account(plan)}:role/any-admin"
    for purpose in ("phi", "artifacts", "logs", "audit"):
        policy = key_policy(plan, purpose)
        for who in (root, intruder):
            assert allows(policy, who, "kms:EnableKeyRotation")  # administration stays with the account
            for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"):
                for service in ("s3", "lambda", "sns", "sqs"):
                    assert not allows(policy, who, action, **via(service)), (purpose, who, action, service)
            # a grant to oneself is use; rewriting the policy is use by another name
            assert not allows(policy, who, "kms:CreateGrant", **FOR_AWS_RESOURCE), (purpose, who)
            assert not allows(policy, who, "kms:CreateGrant"), (purpose, who)
            assert not allows(policy, who, "kms:PutKeyPolicy"), (purpose, who)
        admin = next(s for s in policy["Statement"] if s["Sid"] == "KeyAdministration")
        assert not [a for a in admin["Action"] if "*" in a], "admin actions are listed one by one"


# --- 2. staging/prod endpoints read the promoted model from the build account (both sides) ---------------------
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_promoted_model_is_readable_by_the_endpoint(stack: str) -> None:
    plan, build = rendered(stack), rendered("dev")
    execution = role(plan, "sagemaker-execution")
    bucket = f"clinops-dev-{BUILD_ACCOUNT}-model-artifacts"
    model = f"arn:aws:s3:::{bucket}/readmission-risk/runs/abc/train/model.tar.gz"
    build_key = f"arn:aws:kms:{REGION}:{BUILD_ACCOUNT}:key/0f1e2d3c"
    alias = {"kms__ResourceAliases": ["alias/clinops-dev-artifacts"]}
    # caller side (this account's execution role)
    assert role_may(plan, "execution-permissions", execution, "s3:GetObject", model)
    assert role_may(plan, "execution-permissions", execution, "kms:Decrypt", build_key, **via("s3"), **alias)
    # ... only the build account's artifacts key, found by its alias
    other = {"kms__ResourceAliases": ["alias/clinops-dev-phi"]}
    assert not role_may(plan, "execution-permissions", execution, "kms:Decrypt", build_key, **via("s3"), **other)
    # resource side (the build account's bucket and key)
    bucket_policy = document(build, "aws:s3/bucketPolicy:BucketPolicy::model-artifacts-policy")
    assert allows(bucket_policy, execution, "s3:GetObject", model, aws__SecureTransport="true", s3__TlsVersion="1.3")
    assert allows(key_policy(build, "artifacts"), execution, "kms:Decrypt", **via("s3"))


# --- 3. blue/green auto-rollback reads its alarms as the execution role ------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_execution_role_describes_the_rollback_alarms(stack: str) -> None:
    plan = rendered(stack)
    execution = role(plan, "sagemaker-execution")
    endpoints = states(plan, "aws:sagemaker/endpoint:Endpoint")
    assert endpoints
    for endpoint in endpoints:
        model = endpoint["inputs"]["name"].removeprefix(f"clinops-{stack}-")
        alarms = [a["alarmName"] for a in endpoint["inputs"]["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]]
        assert sorted(alarms) == sorted(alarm_name(stack, model, s) for s in ROLLBACK_ALARM_SUFFIXES)
        for name in alarms:
            arn = f"arn:aws:cloudwatch:{REGION}:{account(plan)}:alarm:{name}"
            assert role_may(plan, "execution-permissions", execution, "cloudwatch:DescribeAlarms", arn)
    foreign = f"arn:aws:cloudwatch:{REGION}:{account(plan)}:alarm:someone-elses"
    assert not role_may(plan, "execution-permissions", execution, "cloudwatch:DescribeAlarms", foreign)


# --- 4. CreateFunction checks the role's permissions: functions wait for their role's policies ------------------
@pytest.mark.parametrize("stack", STACKS)
def test_functions_depend_on_their_role_policies(stack: str) -> None:
    plan = rendered(stack)
    policies_of: dict[str, list[str]] = {}
    for policy in states(plan, "aws:iam/rolePolicy:RolePolicy"):
        for role_urn in policy["propertyDependencies"].get("role", []):
            policies_of.setdefault(role_urn, []).append(policy["urn"])
    functions = states(plan, "aws:lambda/function:Function")
    assert functions
    for function in functions:
        (role_urn,) = function["propertyDependencies"]["role"]
        missing = set(policies_of.get(role_urn, [])) - set(function["dependencies"])
        assert policies_of.get(role_urn) and not missing, f"{function['urn']} may be created before {missing}"


# --- 5. CloudTrail with an S3 Bucket Key decrypts with the audit key, for this trail only ------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_cloudtrail_may_decrypt_for_the_bucket_key(stack: str) -> None:
    plan = rendered(stack)
    audit = key_policy(plan, "audit")
    trail = f"arn:aws:cloudtrail:{REGION}:{account(plan)}:trail/clinops-{stack}-trail"
    assert allows(audit, "cloudtrail.amazonaws.com", "kms:Decrypt", aws__SourceArn=trail)
    assert allows(audit, "cloudtrail.amazonaws.com", "kms:DescribeKey", aws__SourceArn=trail)
    other = f"arn:aws:cloudtrail:{REGION}:444444444444:trail/theirs"
    assert not allows(audit, "cloudtrail.amazonaws.com", "kms:Decrypt", aws__SourceArn=other)


# --- 6. reserved concurrency: off unless configured (new accounts refuse it) -------------------------------------
def test_reserved_concurrency_is_opt_in() -> None:
    for stack in STACKS:
        functions = states(rendered(stack), "aws:lambda/function:Function")
        assert functions and not [f["urn"] for f in functions if f["inputs"].get("reservedConcurrentExecutions")]
    from infra.render import render

    reserving = render("prod", overrides={"clinops:lambdaReservedConcurrency": "true"})
    reserved = {
        f["urn"].split("::")[-1]: f["inputs"].get("reservedConcurrentExecutions")
        for f in states(reserving, "aws:lambda/function:Function")
    }
    assert reserved == {
        "circuit-breaker": 2,
        "readmission-risk-canary": 1,
        "cds-discovery": 20,
        "cds-readmission-risk": 20,
    }


# --- 7. guardrail Lambdas: evidence, UpdateEndpoint grants, the encrypted alert topic, the boundary -------------
@pytest.mark.parametrize("stack", STACKS)
def test_guardrails_may_do_their_job(stack: str) -> None:
    plan = rendered(stack)
    functions = [f["inputs"]["name"] for f in states(plan, "aws:lambda/function:Function")]
    # the CDS functions have their own test (tests/infra/test_cds_api.py): no dead-letter queue, sync calls
    guardrails = [
        n.removeprefix(f"clinops-{stack}-")
        for n in functions
        if not n.endswith("-canary") and not n.removeprefix(f"clinops-{stack}-").startswith("cds-")
    ]
    assert guardrails
    for name in guardrails:
        principal = role(plan, name)
        # append to the evidence log (SSE-KMS, audit key, through S3) and read its head entry
        assert allows(key_policy(plan, "audit"), principal, "kms:GenerateDataKey", **via("s3")), name
        assert allows(key_policy(plan, "audit"), principal, "kms:Decrypt", **via("s3")), name
        # dead-letter queue and environment (logs key, through SQS and Lambda)
        assert allows(key_policy(plan, "logs"), principal, "kms:GenerateDataKey", **via("sqs")), name
    if "circuit-breaker" in guardrails:
        breaker = role(plan, "circuit-breaker")
        # the alert topic is encrypted with the logs key: SNS calls KMS on the publisher's behalf
        assert allows(key_policy(plan, "logs"), breaker, "kms:GenerateDataKey", **via("sns"))
        # UpdateEndpoint to a configuration with a volume key and data capture: SageMaker uses the caller's grant
        for purpose in ("artifacts", "phi"):
            assert allows(key_policy(plan, purpose), breaker, "kms:CreateGrant", **FOR_AWS_RESOURCE), purpose
            assert role_may(plan, "circuit-breaker-permissions", breaker, "kms:CreateGrant", key_arn(plan, purpose)), (
                purpose
            )
    if "approval-recorder" in guardrails:
        recorder = role(plan, "approval-recorder")
        claim = f"arn:aws:ssm:{REGION}:{account(plan)}:parameter/clinops/{stack}/readmission-risk/approval-records/x"
        assert role_may(plan, "approval-recorder-permissions", recorder, "ssm:DeleteParameter", claim)
    # a role that merely shares the platform's name prefix gets nothing (named roles, not `clinops-<stack>-*`)
    impostor = role(plan, "circuit-breaker-2")
    for service in ("lambda", "sns", "sqs"):
        assert not allows(key_policy(plan, "logs"), impostor, "kms:Decrypt", **via(service)), service
    assert not allows(key_policy(plan, "audit"), impostor, "kms:GenerateDataKey", **via("s3"))


# --- 8. the drift pipeline writes reports with the key the artifact bucket requires ------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_drift_reports_use_the_artifacts_key(stack: str) -> None:
    plan = rendered(stack)
    bucket_policy = document(plan, "aws:s3/bucketPolicy:BucketPolicy::model-artifacts-policy")
    pipelines = [
        p for p in states(plan, "aws:sagemaker/pipeline:Pipeline") if p["inputs"]["pipelineName"].endswith("-drift")
    ]
    assert pipelines
    for pipeline in pipelines:
        steps = {s["Name"]: s["Arguments"] for s in json.loads(pipeline["inputs"]["pipelineDefinition"])["Steps"]}
        for name in ("DriftMerge", "QualityBacktest"):
            job = steps[name]
            (output,) = job["ProcessingOutputConfig"]["Outputs"]
            prefix = output["S3Output"]["S3Uri"]["Std:Join"]["Values"][0]
            assert prefix.startswith(f"s3://clinops-{stack}-{account(plan)}-model-artifacts/")
            key = job["ProcessingOutputConfig"]["KmsKeyId"]
            obj = f"arn:aws:s3:::{prefix.removeprefix('s3://')}/run/report/drift.json"
            upload = {
                "s3:x-amz-server-side-encryption": "aws:kms",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": key,
                "aws:SecureTransport": "true",
                "s3:TlsVersion": "1.3",
            }
            # the bucket policy's "deny other key" must not refuse the upload
            denied = [
                s["Sid"]
                for s in bucket_policy["Statement"]
                if s["Effect"] == "Deny" and _applies(s, role(plan, "sagemaker-execution"), "s3:PutObject", obj, upload)
            ]
            assert not denied, f"{name}: {denied}"
            assert key == key_arn(plan, "artifacts")


# --- 9. the schedule's target role decrypts the schedule, not the Scheduler service ------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_schedule_target_role_decrypts_the_schedule(stack: str) -> None:
    plan = rendered(stack)
    logs = key_policy(plan, "logs")
    schedules = states(plan, "aws:scheduler/schedule:Schedule")
    assert schedules
    for schedule in schedules:
        arn = f"arn:aws:scheduler:{REGION}:{account(plan)}:schedule/default/{schedule['inputs']['name']}"
        target_role = role(plan, f"{schedule['inputs']['name'].removeprefix(f'clinops-{stack}-')}-scheduler")
        context = {"kms__EncryptionContext:aws:scheduler:schedule-arn": arn}
        assert allows(logs, target_role, "kms:Decrypt", **context)
        policy = schedule["inputs"]["name"].removeprefix(f"clinops-{stack}-") + "-scheduler-permissions"
        assert role_may(plan, policy, target_role, "kms:Decrypt", key_arn(plan, "logs"))
        assert allows(logs, deploy_identity(plan), "kms:Encrypt", **context)  # created by the deploy
        # ... and only for this stack's schedules (one statement for every target role: a statement per
        # schedule outgrew the key policy quota at about 35 models); the service principal itself gets nothing
        other = {"kms__EncryptionContext:aws:scheduler:schedule-arn": arn.replace(f"/clinops-{stack}-", "/clinops-x-")}
        assert not allows(logs, target_role, "kms:Decrypt", **other)
    assert not allows(logs, "scheduler.amazonaws.com", "kms:Decrypt", aws__SourceAccount=account(plan))


# --- 10. endpoints write captured data as the execution role -----------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_execution_role_writes_data_capture(stack: str) -> None:
    plan = rendered(stack)
    execution = role(plan, "sagemaker-execution")
    capture = f"arn:aws:s3:::clinops-{stack}-{account(plan)}-data-capture/readmission-risk/AllTraffic/2026/x.jsonl"
    assert role_may(plan, "execution-permissions", execution, "s3:PutObject", capture)
    assert allows(key_policy(plan, "phi"), execution, "kms:GenerateDataKey", **via("s3"))


# --- 11. the workload security group's egress is separate rule resources only ------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_workload_egress_is_rule_resources_only(stack: str) -> None:
    plan = rendered(stack)
    group = state(plan, "aws:ec2/securityGroup:SecurityGroup::workload-security-group")
    assert "egress" not in group["inputs"]
    rules = [
        r
        for r in states(plan, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if group["urn"] in r["propertyDependencies"].get("securityGroupId", [])
    ]
    described = sorted(r["inputs"]["description"] for r in rules)
    assert described == [
        "TLS to AWS APIs inside the VPC",
        "TLS to S3 through the gateway endpoint",
        "between workload members",
    ]
    cidrs = [r["inputs"].get("cidrIpv4") for r in rules if r["inputs"].get("cidrIpv4")]
    assert cidrs == [plan["config"]["clinops:vpcCidr"]]  # never 0.0.0.0/0


# --- 12. IAM mistakes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_iam_mistakes_are_fixed(stack: str) -> None:
    plan = rendered(stack)
    ceiling = boundary(plan)
    author = role(plan, "author")
    domain = f"arn:aws:sagemaker:{REGION}:{account(plan)}:domain/d-1"
    # the Studio deny uses the key CreateDomain carries
    public = {"sagemaker__AppNetworkAccessType": "PublicInternetOnly"}
    assert not allows(ceiling, author, "sagemaker:CreateDomain", domain, aws__RequestedRegion=REGION, **public)
    vpc_only = {"sagemaker__AppNetworkAccessType": "VpcOnly"}
    assert allows(ceiling, author, "sagemaker:CreateDomain", domain, aws__RequestedRegion=REGION, **vpc_only)
    # DescribeKey's request has no GrantIsForAWSResource: it must not sit under that condition
    deployer = role(plan, "deployer")
    assert role_may(plan, "deployer-permissions", deployer, "kms:DescribeKey", key_arn(plan, "artifacts"))
    for policy in states(plan, "aws:iam/rolePolicy:RolePolicy"):
        for s in json.loads(policy["inputs"]["policy"])["Statement"]:
            if "kms:GrantIsForAWSResource" in json.dumps(s.get("Condition", {})):
                assert s["Action"] in ("kms:CreateGrant", ["kms:CreateGrant"]), (policy["urn"], s["Sid"])
            # List calls without a resource type are authorised on "*" only
            if "sagemaker:List*" in _list(s["Action"]):
                assert s["Resource"] == "*", (policy["urn"], s["Sid"])
    listing = {"aws__RequestedRegion": REGION}
    assert role_may(plan, "author-permissions", author, "sagemaker:ListTrainingJobs", "*", **listing)
    # Studio personas use spaces (JupyterLab, Code Editor run in spaces)
    space = f"arn:aws:sagemaker:{REGION}:{account(plan)}:space/d-1/my-space"
    for persona in ("author", "approver"):
        for action in ("sagemaker:CreateSpace", "sagemaker:DescribeSpace", "sagemaker:UpdateSpace"):
            assert role_may(plan, f"{persona}-permissions", role(plan, persona), action, space, **listing), action
        assert role_may(plan, f"{persona}-permissions", role(plan, persona), "sagemaker:ListSpaces", "*", **listing)


# --- security findings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_access_log_bucket_is_sse_s3_and_delivery_allowed(stack: str) -> None:
    plan = rendered(stack)
    sse = state(plan, "BucketServerSideEncryptionConfiguration::access-logs-encryption")
    assert sse["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    policy = document(plan, "aws:s3/bucketPolicy:BucketPolicy::access-logs-policy")
    log = f"arn:aws:s3:::clinops-{stack}-{account(plan)}-access-logs/phi-data/x"
    delivery = {"aws__SourceAccount": account(plan), "aws__SecureTransport": "true", "s3__TlsVersion": "1.3"}
    assert allows(policy, "logging.s3.amazonaws.com", "s3:PutObject", log, **delivery)
    kms_upload = {**delivery, "s3__x-amz-server-side-encryption": "aws:kms"}
    assert not allows(policy, "logging.s3.amazonaws.com", "s3:PutObject", log, **kms_upload)
    assert "S3ServerAccessLogs" not in [s["Sid"] for s in key_policy(plan, "logs")["Statement"]]


@pytest.mark.parametrize("stack", STACKS)
def test_traced_functions_reach_xray(stack: str) -> None:
    plan = rendered(stack)
    assert "com.amazonaws.{region}.xray" in INTERFACE_ENDPOINT_SERVICES
    endpoints = [e["inputs"]["serviceName"] for e in states(plan, "aws:ec2/vpcEndpoint:VpcEndpoint")]
    assert f"com.amazonaws.{REGION}.xray" in endpoints
    for function in states(plan, "aws:lambda/function:Function"):
        assert function["inputs"]["tracingConfig"] == {"mode": "Active"}
        principal = f"arn:aws:iam::{account(plan)}:role/{function['inputs']['name']}"
        suffix = function["urn"].split("::")[-1] + "-permissions"
        assert role_may(plan, suffix, principal, "xray:PutTraceSegments", "*"), function["urn"]


@pytest.mark.parametrize("stack", STACKS)
def test_buckets_take_default_encryption_and_refuse_other_keys(stack: str) -> None:
    """Found while writing these tests: the "other encryption" denies used StringNotEqualsIfExists, which is true
    when the header is absent, so every upload without encryption headers (S3 access-log delivery, the MLflow
    server's artifacts) was refused although the bucket's default key would have applied."""
    plan = rendered(stack)
    writer = role(plan, "sagemaker-execution")
    tls = {"aws__SecureTransport": "true", "s3__TlsVersion": "1.3"}
    for bucket, purpose in (("model-artifacts", "artifacts"), ("phi-data", "phi"), ("data-capture", "phi")):
        policy = document(plan, f"aws:s3/bucketPolicy:BucketPolicy::{bucket}-policy")
        obj = f"arn:aws:s3:::clinops-{stack}-{account(plan)}-{bucket}/m/x"
        denied = [
            s["Sid"]
            for s in policy["Statement"]
            if s["Effect"] == "Deny"
            and _applies(s, writer, "s3:PutObject", obj, {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"})
        ]
        assert not denied, f"{bucket}: a header-less upload is refused by {denied}"
        own = {
            "s3__x-amz-server-side-encryption": "aws:kms",
            "s3__x-amz-server-side-encryption-aws-kms-key-id": key_arn(plan, purpose),
        }
        refused = [
            {"s3__x-amz-server-side-encryption": "AES256"},
            {"s3__x-amz-server-side-encryption": "aws:kms"},  # no key id: the AWS managed key aws/s3
            {**own, "s3__x-amz-server-side-encryption-aws-kms-key-id": key_arn(plan, "logs")},
        ]
        denies = {"Statement": [s for s in policy["Statement"] if s["Effect"] == "Deny"]}
        allow_all = {"Statement": [*denies["Statement"], {"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        assert allows(allow_all, writer, "s3:PutObject", obj, **tls, **own), bucket
        for headers in refused:
            assert not allows(allow_all, writer, "s3:PutObject", obj, **tls, **headers), (bucket, headers)


@pytest.mark.parametrize("stack", STACKS)
def test_release_may_publish_the_drift_baseline(stack: str) -> None:
    """Issue 11 item 8: s3://<artifacts>/<model>/baseline/ has a producer (serving/release/baseline.py)."""
    plan = rendered(stack)
    deployer = role(plan, "deployer")
    bucket = f"clinops-{stack}-{account(plan)}-model-artifacts"
    target = f"arn:aws:s3:::{bucket}/readmission-risk/baseline/baseline.json"
    assert role_may(plan, "deployer-permissions", deployer, "s3:PutObject", target)
    assert not role_may(plan, "deployer-permissions", deployer, "s3:PutObject", f"arn:aws:s3:::{bucket}/x/model.tar.gz")
    assert allows(key_policy(plan, "artifacts"), deployer, "kms:GenerateDataKey", **via("s3"))
    assert role_may(plan, "deployer-permissions", deployer, "kms:GenerateDataKey", key_arn(plan, "artifacts"))
    source_bucket = bucket if stack == "dev" else f"clinops-dev-{BUILD_ACCOUNT}-model-artifacts"
    source = f"arn:aws:s3:::{source_bucket}/readmission-risk/runs/exec-1/model/model.tar.gz"
    assert role_may(plan, "deployer-permissions", deployer, "s3:GetObject", source)
    # the upload names the artifacts key, which the bucket's policy requires
    policy = document(plan, "aws:s3/bucketPolicy:BucketPolicy::model-artifacts-policy")
    upload = {
        "aws:SecureTransport": "true",
        "s3:TlsVersion": "1.3",
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn(plan, "artifacts"),
    }
    assert not [
        s["Sid"]
        for s in policy["Statement"]
        if s["Effect"] == "Deny" and _applies(s, deployer, "s3:PutObject", target, upload)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_encrypted_jobs_in_the_vpc_pass_the_boundary(stack: str) -> None:
    """Found while checking condition keys against AWS's IAM data: the boundary's unencrypted-volume deny used
    `sagemaker:VolumeKmsKey`, which no request carries (the key is `sagemaker:VolumeKmsKeyArn`), so its Null test
    was always true and every training and processing job was refused, the pipelines' included."""
    plan = rendered(stack)
    execution = role(plan, "sagemaker-execution")
    job = f"arn:aws:sagemaker:{REGION}:{account(plan)}:processing-job/clinops-drift-1"
    request = {
        "aws__RequestedRegion": REGION,
        "sagemaker__VpcSubnets": ["subnet-1"],
        "sagemaker__VolumeKmsKeyArn": key_arn(plan, "phi"),
        "sagemaker__InterContainerTrafficEncryption": "true",
    }
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob"):
        assert allows(boundary(plan), execution, action, job, **request), action
        unencrypted = {k: v for k, v in request.items() if k != "sagemaker__VolumeKmsKeyArn"}
        assert not allows(boundary(plan), execution, action, job, **unencrypted), action
        outside = {k: v for k, v in request.items() if k != "sagemaker__VpcSubnets"}
        assert not allows(boundary(plan), execution, action, job, **outside), action
