"""The Lambda adapter: API Gateway's proxy event in, the service's answer out, built from the environment the
component sets (against moto for SSM and CloudWatch)."""

from __future__ import annotations

import base64
import json

import boto3
from moto import mock_aws

from clinops.names import parameter
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
        discovery = lambda_handler.build({**env, "CDS_MODEL": ""})
        boto3.client("ssm", "us-east-1").put_parameter(
            Name=parameter("dev", "readmission-risk", "cds-hash-key"), Value="k" * 32, Type="SecureString"
        )
        model = lambda_handler.build(
            {
                **env,
                "CDS_MODEL": "readmission-risk",
                "ENDPOINT_NAME": "clinops-dev-readmission-risk",
                "EVIDENCE_BUCKET": "b",
                "EVIDENCE_MAC_KEY_ID": "alias/clinops-dev-evidence-mac",
                "HASH_KEY_PARAMETER": parameter("dev", "readmission-risk", "cds-hash-key"),
            }
        )
    path = "/cds-services"
    listed = discovery.handle("GET", path, {"Authorization": f"Bearer {harness.ehr.token(path)}"}, b"")
    assert listed.status == 200 and len(listed.body["services"]) == 2
    assert sorted(model.services) == ["readmission-risk"] and model.settings.hash_key == b"k" * 32
