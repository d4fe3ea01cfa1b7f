"""The Lambda adapter: API Gateway's proxy event in, the service's answer out, built from the environment the
component sets (against moto for SSM and CloudWatch)."""

from __future__ import annotations

import base64
import json

import boto3
from moto import mock_aws

from serving.cds import lambda_handler
from tests.conftest import REPO
from tests.serving.cds.conftest import BASE, ISSUER, JWKS_URL, Harness

HOOK = "/cds-services/readmission-risk"


def event(method: str, path: str, token: str, body: object = None, b64: bool = False) -> dict:
    raw = "" if body is None else json.dumps(body)
    return {
        "httpMethod": method,
        "path": path,
        "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        "body": base64.b64encode(raw.encode()).decode() if b64 else raw,
        "isBase64Encoded": b64,
    }


def test_proxy_events_reach_the_service_and_come_back_as_proxy_answers(harness: Harness, monkeypatch) -> None:
    monkeypatch.setattr(lambda_handler, "_SERVICE", harness.service)
    request = harness.hook()
    answer = lambda_handler.handler(event("POST", HOOK, harness.ehr.token(HOOK), request, b64=True), None)
    assert answer["statusCode"] == 200 and answer["headers"]["Cache-Control"] == "no-store"
    assert json.loads(answer["body"])["cards"][0]["summary"].endswith("(46%)")
    denied = lambda_handler.handler(event("GET", "/cds-services", "forged"), None)
    assert denied["statusCode"] == 401


def test_build_from_the_components_environment(harness: Harness, monkeypatch) -> None:
    from clinops.config import load_from_stack_file

    models = [m.model_dump(mode="json", by_alias=True) for m in load_from_stack_file("dev", REPO).models if m.cds]
    for model in models:  # the endpoint's absence, not a slow first client on a loaded machine, decides the card
        model["cds"]["deadlineMs"] = 5000
    env = {
        "CDS_STACK": "dev",
        "CDS_MODELS": json.dumps(models),
        "CDS_ISSUERS": json.dumps({ISSUER: JWKS_URL}),
        "CDS_ORIGINS": "https://ehr.hospital.example",
        "CDS_BASE_URL": BASE,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    jwks = harness.ehr.jwks()
    monkeypatch.setattr(lambda_handler, "fetch_jwks", lambda url: jwks)
    with mock_aws():
        kms, s3 = boto3.client("kms", "us-east-1"), boto3.client("s3", "us-east-1")
        discovery = lambda_handler.build({**env, "CDS_MODEL": ""})
        s3.create_bucket(Bucket="evidence-bucket")
        hmac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        audit_key = kms.create_key()["KeyMetadata"]["Arn"]
        model_env = {
            **env,
            "CDS_MODEL": "readmission-risk",
            "ENDPOINT_NAME": "clinops-dev-readmission-risk",
            "EVIDENCE_BUCKET": "evidence-bucket",
            "EVIDENCE_KMS_KEY_ID": audit_key,
            "EVIDENCE_MAC_KEY_ID": "alias/clinops-dev-evidence-mac",
            "ENCOUNTER_MAC_KEY_ID": hmac_key,
        }
        # two execution environments of the same function: a card issued by one is found by the other
        first, second = lambda_handler.build(model_env), lambda_handler.build(model_env)
        request = harness.hook()
        token = harness.ehr.token(HOOK)
        answer = first.handle("POST", HOOK, {"Authorization": f"Bearer {token}"}, json.dumps(request).encode())
        card = answer.body["cards"][0]
        first.records.shutdown(wait=True)  # a record still being written at the deadline completes behind the card
        record = second.issued.get("readmission-risk", card["uuid"])
        stored = s3.list_objects_v2(Bucket="evidence-bucket", Prefix="cds-issued/dev/readmission-risk/")["Contents"]
        body = s3.get_object(Bucket="evidence-bucket", Key=stored[0]["Key"])
        expected = kms.generate_mac(
            KeyId=hmac_key, Message=request["context"]["encounterId"].encode(), MacAlgorithm="HMAC_SHA_256"
        )["Mac"]
    path = "/cds-services"
    listed = discovery.handle("GET", path, {"Authorization": f"Bearer {harness.ehr.token(path)}"}, b"")
    assert listed.status == 200 and len(listed.body["services"]) == 2
    assert sorted(first.services) == ["readmission-risk"] and discovery.hasher is None
    # no endpoint in moto: a fallback card, recorded all the same, with the KMS-keyed hash of the encounter
    assert record is not None and record.kind == "endpoint" and record.model == "readmission-risk"
    assert record.encounter_hash == bytes(expected).hex()[:32] and record.issued_at
    assert [o["Key"] for o in stored] == [f"cds-issued/dev/readmission-risk/{card['uuid']}.json"]
    assert body["ServerSideEncryption"] == "aws:kms" and body["SSEKMSKeyId"] == audit_key
    assert request["context"]["encounterId"] not in body["Body"].read().decode()
