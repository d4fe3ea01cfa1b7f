"""The evidence log works with the permissions the platform actually grants.

The AWS calls `append` and `verify` really make (recorded from botocore against moto, in the rendered prod
stack's own bucket name and head parameter) are turned into the IAM actions and resources AWS authorises, and
each is checked against the rendered plan: the role's own policy, the permissions boundary, the key policies
and the evidence bucket policy. And the other way round: a verifier may not seal, nobody may delete or
overwrite, and CloudTrail records the evidence prefix.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from clinops.evidence import EvidenceLog, head_parameter_name
from clinops.evidence.s3 import EVIDENCE_PREFIX
from infra.guardrails import EVIDENCE_WRITER_FUNCTIONS
from tests.clinops.evidence.helpers import STORY, stepping_clock
from tests.conftest import REPO, rendered

STACK, REGION, ACCOUNT = "prod", "us-east-1", "333333333333"  # the calls are recorded in prod's terms
ACCOUNTS = {"dev": "111111111111", "prod": ACCOUNT}
BUCKET = f"clinops-{STACK}-{ACCOUNT}-evidence"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
Call = tuple[str, str]  # (IAM action, resource ARN)
# Where each writer exists: the breaker beside the endpoints; the recorder and retraining beside the registry.
WRITERS = [("prod", "deployer"), ("prod", "circuit-breaker"), ("dev", "approval-recorder"), ("dev", "retraining")]


def key_arn(stack: str, name: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNTS[stack]}:key/{name}"  # the render's stand-in ARN of a key


def in_stack(calls: set[Call], stack: str) -> set[Call]:
    """The recorded prod calls as the same code makes them in another stack (names carry stack and account)."""
    return {
        (a, r.replace(ACCOUNT, ACCOUNTS[stack]).replace(f"-{STACK}", f"-{stack}").replace(f"/{STACK}", f"/{stack}"))
        for a, r in calls
    }


def plan_state(plan: dict, suffix: str) -> dict:
    return next(s["newState"] for s in plan["steps"] if s["urn"].endswith(suffix))


def document(plan: dict, suffix: str, field: str = "policy") -> list[dict]:
    return json.loads(plan_state(plan, suffix)["inputs"][field])["Statement"]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """The condition operators these policies use, evaluated on a request's context."""
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            present = key in context
            values = [str(v) for v in _listed(wanted)]
            if operator == "Null":
                if (not present) != (values == ["true"]):
                    return False
            elif operator.endswith("IfExists") and not present:
                continue
            elif operator.startswith("StringNotEquals"):
                if context.get(key) in values:
                    return False
            elif operator in ("StringEquals", "Bool", "ArnEquals"):
                if context.get(key) not in values:
                    return False
            elif operator in ("StringLike", "ArnLike"):
                if not any(fnmatch.fnmatchcase(context.get(key, ""), v) for v in values):
                    return False
            elif operator == "NumericLessThan":
                if not present or not float(context[key]) < float(values[0]):
                    return False
            else:
                raise AssertionError(f"condition operator {operator} not modelled by this test")
    return True


def _matches(statement: dict, call: Call, principal: str | None, context: dict[str, str]) -> bool:
    action, resource = call
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement.get("Resource", "*"))):
        return False
    if principal is not None and "Principal" in statement:
        allowed = statement["Principal"] if statement["Principal"] == "*" else statement["Principal"].get("AWS", [])
        if allowed != "*" and "*" not in _listed(allowed) and principal not in _listed(allowed):
            return False
    return _condition_holds(statement.get("Condition", {}), context)


def allows(statements: list[dict], call: Call, principal: str | None = None, context: dict | None = None) -> bool:
    context = context or {}
    hits = [s for s in statements if _matches(s, call, principal, context)]
    return any(s["Effect"] == "Allow" for s in hits) and not any(s["Effect"] == "Deny" for s in hits)


def denies(statements: list[dict], call: Call, context: dict | None = None) -> bool:
    return any(s["Effect"] == "Deny" and _matches(s, call, None, context or {}) for s in statements)


# -- what append and verify call --------------------------------------------------------------------------------

S3_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
}


class Recorder:
    """IAM (action, resource) pairs, in the rendered stack's terms, for every call the clients make."""

    def __init__(self, clients: dict[str, Any], key_arns: dict[str, str], sse_key: str) -> None:
        self.calls: set[Call] = set()
        self._key_arns, self._sse_key = key_arns, sse_key  # moto key ARN -> the plan's; the bucket's SSE key
        for service, client in clients.items():
            client.meta.events.register(f"provide-client-params.{service}", self._record(service))

    def _record(self, service: str) -> Any:
        def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
            name = model.name
            if service == "s3" and "Key" in params:
                action = "s3:GetObjectVersion" if "VersionId" in params else S3_ACTIONS[name]
                self.calls.add((action, f"{BUCKET_ARN}/{params['Key']}"))
                # SSE-KMS: reading decrypts the data key, writing generates one (S3 calls KMS as the caller)
                self.calls.add(("kms:Decrypt" if name == "GetObject" else "kms:GenerateDataKey", self._sse_key))
            elif service == "s3":
                self.calls.add((S3_ACTIONS[name], BUCKET_ARN))
            elif service == "kms":
                self.calls.add((f"kms:{name}", self._key_arns[params["KeyId"]]))
            elif service == "ssm":
                self.calls.add((f"ssm:{name}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{params['Name']}"))

        return hook


@pytest.fixture(scope="module")
def used() -> dict[str, set[Call]]:
    """The calls of a few appends and of one verify against moto, with prod's bucket and head parameter."""
    with mock_aws():
        kms = boto3.client("kms", region_name=REGION)
        mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        sse_key = kms.create_key()["KeyMetadata"]["Arn"]
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2190}},
            },
        )
        recorded: dict[str, set[Call]] = {}
        for phase in ("append", "verify"):
            s3, kms, ssm = (boto3.client(n, region_name=REGION) for n in ("s3", "kms", "ssm"))  # fresh hooks
            recorder = Recorder(
                {"s3": s3, "kms": kms, "ssm": ssm},
                {mac_key: key_arn(STACK, "evidence-mac-key")},
                key_arn(STACK, "audit-key"),
            )
            log = EvidenceLog.s3(
                BUCKET,
                EVIDENCE_PREFIX,
                STACK,
                mac_key_id=mac_key,
                kms_key_id=sse_key,
                client=s3,
                kms_client=kms,
                ssm_client=ssm,
                clock=stepping_clock(),
            )
            if phase == "append":
                for event in STORY[:3]:
                    log.append(**event)
            else:
                assert log.verify().ok
            recorded[phase] = recorder.calls
    return recorded  # the emulator is gone before any test runs: nothing else sees it


def test_the_recorded_calls_are_what_verify_needs(used: dict[str, set[Call]]) -> None:
    verify_actions = {action for action, _ in used["verify"]}
    needed = {"s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration", "kms:VerifyMac", "ssm:GetParameter"}
    assert needed <= verify_actions
    assert {"kms:GenerateMac", "ssm:PutParameter", "s3:PutObject"} <= {a for a, _ in used["append"]}
    head = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{head_parameter_name(STACK)}"
    assert ("ssm:GetParameter", head) in used["verify"]


def _role(plan: dict, persona: str, stack: str = STACK) -> tuple[str, list[dict]]:
    policy = document(plan, f"aws:iam/rolePolicy:RolePolicy::{persona}-permissions")
    return f"arn:aws:iam::{ACCOUNTS[stack]}:role/clinops-{stack}-{persona}", policy


def _request_context(principal: str, sse_key: str) -> dict[str, str]:
    return {
        "aws:PrincipalArn": principal,
        "aws:SecureTransport": "true",
        "s3:TlsVersion": "1.3",
        "kms:CallerAccount": principal.split(":")[4],
        "kms:MacAlgorithm": "HMAC_SHA_256",
        "kms:ViaService": f"s3.{REGION}.amazonaws.com",
        # what clinops.evidence.s3 sends with every PutObject
        "s3:if-none-match": "*",
        "s3:ObjectCreationOperation": "true",
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": sse_key,
    }


def _refusals(plan: dict, principal: str, identity: list[dict], calls: set[Call], stack: str = STACK) -> list[str]:
    boundary = document(plan, "aws:iam/policy:Policy::permissions-boundary")
    bucket_policy = document(plan, "aws:s3/bucketPolicy:BucketPolicy::evidence-policy")
    key_policies = {
        key_arn(stack, k): document(plan, f"aws:kms/key:Key::{k}") for k in ("audit-key", "evidence-mac-key")
    }
    context = _request_context(principal, key_arn(stack, "audit-key"))
    refused = []
    for call in sorted(calls):
        if not allows(identity, call, context=context):
            refused.append(f"{call}: not in the role's policy")
        if not allows(boundary, call, context=context):
            refused.append(f"{call}: outside the permissions boundary")
        if call[1] in key_policies and not allows(key_policies[call[1]], (call[0], "*"), principal, context):
            refused.append(f"{call}: the key policy does not allow {principal}")
        if call[0].startswith("s3:") and denies(bucket_policy, call, context):
            refused.append(f"{call}: denied by the bucket policy")
    return refused


@pytest.mark.parametrize("persona", ["approver", "deployer"])
def test_the_verifiers_may_make_every_call_verify_makes(used: dict[str, set[Call]], persona: str) -> None:
    plan = rendered(STACK)
    principal, identity = _role(plan, persona)
    assert _refusals(plan, principal, identity, used["verify"]) == []


@pytest.mark.parametrize(("stack", "writer"), WRITERS)
def test_the_writers_may_make_every_call_append_makes(used: dict[str, set[Call]], stack: str, writer: str) -> None:
    plan = rendered(stack)
    principal, identity = _role(plan, writer, stack)
    assert _refusals(plan, principal, identity, in_stack(used["append"], stack), stack) == []


def test_every_writer_is_checked() -> None:
    assert {w for _, w in WRITERS} == {"deployer", *EVIDENCE_WRITER_FUNCTIONS}


def test_a_reader_cannot_seal_an_entry(used: dict[str, set[Call]]) -> None:
    plan = rendered(STACK)
    seal = ("kms:GenerateMac", key_arn(STACK, "evidence-mac-key"))
    assert seal in used["append"]
    key_policy = document(plan, "aws:kms/key:Key::evidence-mac-key")
    for persona in ("approver", "author"):
        principal, identity = _role(plan, persona)
        context = _request_context(principal, key_arn(STACK, "audit-key"))
        assert not allows(identity, seal, context=context), persona
        assert not allows(key_policy, (seal[0], "*"), principal, context), persona
    execution = document(plan, "aws:iam/rolePolicy:RolePolicy::execution-permissions")
    assert not allows(execution, seal)


def test_the_checker_sees_a_missing_grant(used: dict[str, set[Call]]) -> None:
    """The evaluator is not vacuous: without the versions grant the approver's verify is refused, and the
    approver's seal would be refused."""
    plan = rendered(STACK)
    principal, identity = _role(plan, "approver")
    stripped = [{**s, "Action": [a for a in _listed(s["Action"]) if a != "s3:ListBucketVersions"]} for s in identity]
    refused = _refusals(plan, principal, stripped, used["verify"])
    assert refused and all("ListBucketVersions" in r for r in refused)
    seal = next(call for call in used["append"] if call[0] == "kms:GenerateMac")
    assert _refusals(plan, principal, identity, {seal})


def test_nobody_may_delete_or_overwrite_an_entry() -> None:
    bucket_policy = document(rendered(STACK), "aws:s3/bucketPolicy:BucketPolicy::evidence-policy")
    entry = f"{BUCKET_ARN}/{EVIDENCE_PREFIX}/{STACK}/000000000003.json"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert denies(bucket_policy, (action, entry))
    plain_put = {  # the encryption headers clinops sends, but no If-None-Match: this request would replace the entry
        "s3:ObjectCreationOperation": "true",
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn(STACK, "audit-key"),
    }
    assert denies(bucket_policy, ("s3:PutObject", entry), plain_put)
    assert not denies(bucket_policy, ("s3:PutObject", entry), {**plain_put, "s3:if-none-match": "*"})
    trail_file = f"{BUCKET_ARN}/cloudtrail/AWSLogs/{ACCOUNT}/x.json.gz"  # CloudTrail's deliveries: another prefix
    assert not denies(bucket_policy, ("s3:PutObject", trail_file), plain_put)


def test_cloudtrail_records_data_events_on_the_evidence_prefix_only() -> None:
    trail = plan_state(rendered(STACK), "aws:cloudtrail/trail:Trail::trail")["inputs"]
    data = [s for s in trail["advancedEventSelectors"] if any(f.get("equals") == ["Data"] for f in s["fieldSelectors"])]
    prefixes = [p for s in data for f in s["fieldSelectors"] for p in f.get("starts_with", [])]
    assert f"{BUCKET_ARN}/{EVIDENCE_PREFIX}/" in prefixes
    assert f"{BUCKET_ARN}/" not in prefixes  # the whole bucket would record the trail's own deliveries


@pytest.mark.parametrize(("stack", "function"), [w for w in WRITERS if w[1] != "deployer"])
def test_the_guardrail_functions_are_told_the_mac_key(stack: str, function: str) -> None:
    state = plan_state(rendered(stack), f"aws:lambda/function:Function::{function}")
    assert state["inputs"]["environment"]["variables"]["EVIDENCE_MAC_KEY_ID"] == key_arn(stack, "evidence-mac-key")


def test_the_key_policy_names_exactly_the_writer_functions() -> None:
    statements = document(rendered(STACK), "aws:kms/key:Key::evidence-mac-key")
    sealing = next(s for s in statements if s["Sid"] == "EvidenceSealingFunctions")
    named = sealing["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    cds_writers = [f"cds-{m['name']}" for m in _models(STACK) if m.get("cds") and m.get("packageArn")]
    assert sorted(named) == sorted(
        f"arn:aws:iam::{ACCOUNT}:role/clinops-{STACK}-{f}" for f in (*EVIDENCE_WRITER_FUNCTIONS, *cds_writers)
    )


def _models(stack: str) -> list[dict]:
    """The stack file's models (the CDS functions that record clinicians' feedback are evidence writers too)."""
    import yaml

    return yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]["clinops:models"]


@pytest.mark.parametrize("persona", ["approver", "author", "execution"])
def test_only_the_writers_may_put_evidence_objects(persona: str) -> None:
    policy = document(rendered(STACK), f"aws:iam/rolePolicy:RolePolicy::{persona}-permissions")
    assert not allows(policy, ("s3:PutObject", f"{BUCKET_ARN}/{EVIDENCE_PREFIX}/{STACK}/000000000009.json"))
