"""The CDS service as a VPC Lambda behind the private API Gateway (infra/cds_api.py): API Gateway's proxy
event in, `CdsService.handle`, its answer out. One function per model (its role may invoke only that model's
endpoint) and one for discovery (no endpoint at all). Built once per execution environment.

Environment (set by the component): CDS_STACK, CDS_MODEL (empty: discovery), CDS_MODELS (JSON list of the
stack's `models[]` with a `cds` section), CDS_BASE_URL (the API's invoke URL: the JWT audience's prefix),
CDS_ISSUERS (JSON issuer -> JWKS URL), CDS_ORIGINS (comma-separated), ENDPOINT_NAME, EVIDENCE_BUCKET,
EVIDENCE_KMS_KEY_ID, EVIDENCE_MAC_KEY_ID, ENCOUNTER_MAC_KEY_ID (the stack's KMS HMAC key for encounter ids: no
operator-made secret). Issued cards are recorded in the evidence bucket (`serving.cds.feedback.S3IssuanceStore`),
so feedback reaching any instance finds its card.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from typing import Any

from clinops.models import ModelConfig
from serving.cds.service import CdsService, CdsSettings, ModelService, model_services

_SERVICE: CdsService | None = None


class _NoScorer:
    """Discovery's function answers no hook: API Gateway routes hooks to the model's own function."""

    def score(self, features: dict[str, Any], timeout: float) -> Any:
        from serving.cds.scoring import ScoringError

        raise ScoringError("this function serves discovery only")


def fetch_jwks(url: str) -> dict[str, Any]:
    if not url.startswith("https://"):
        raise ValueError("JWKS URLs are https")
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def build(env: dict[str, str] | os._Environ[str] = os.environ) -> CdsService:
    import boto3
    from botocore.config import Config

    from clinops.evidence import EvidenceLog
    from serving.cds.auth import JwtVerifier
    from serving.cds.feedback import (
        FeedbackRecorder,
        IssuedCards,
        KmsEncounterHasher,
        S3IssuanceStore,
    )
    from serving.cds.fhirclient import HttpFhirFetcher
    from serving.cds.guardrails import AwsGuardrails, GuardrailView
    from serving.cds.scoring import SageMakerScorer, explanations_wanted

    stack, model = env["CDS_STACK"], env.get("CDS_MODEL", "")
    models = [ModelConfig.model_validate(m) for m in json.loads(env["CDS_MODELS"])]
    issuers = json.loads(env["CDS_ISSUERS"])
    quick = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
    ssm, cloudwatch = boto3.client("ssm", config=quick), boto3.client("cloudwatch", config=quick)
    if model:
        runtime = boto3.client("sagemaker-runtime", config=quick)
        explain = next((explanations_wanted(m) for m in models if m.name == model), 0)
        services: list[ModelService] = model_services(
            models, {model: SageMakerScorer(runtime, env["ENDPOINT_NAME"], explain)}, only={model}
        )
        hasher = KmsEncounterHasher(env["ENCOUNTER_MAC_KEY_ID"], boto3.client("kms", config=quick))
        issued = IssuedCards(
            S3IssuanceStore(env["EVIDENCE_BUCKET"], stack, env["EVIDENCE_KMS_KEY_ID"], boto3.client("s3", config=quick))
        )
        evidence = EvidenceLog.s3(
            env["EVIDENCE_BUCKET"],
            "evidence",
            stack,
            mac_key_id=env["EVIDENCE_MAC_KEY_ID"],
            kms_key_id=env.get("EVIDENCE_KMS_KEY_ID"),
        )
    else:
        services = model_services(models, {m.name: _NoScorer() for m in models})
        hasher, issued, evidence = None, None, None
    return CdsService(
        CdsSettings(
            env["CDS_BASE_URL"],
            stack,
            issuers,
            frozenset(o for o in env.get("CDS_ORIGINS", "").split(",") if o),
        ),
        services,
        JwtVerifier(issuers, fetch_jwks),
        GuardrailView(AwsGuardrails(stack, ssm, cloudwatch)),
        HttpFhirFetcher(),
        FeedbackRecorder(stack, evidence, cloudwatch if model else None),
        hasher=hasher,
        issued=issued,
        workers=8,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _SERVICE
    if _SERVICE is None:
        _SERVICE = build()
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    response = _SERVICE.handle(event.get("httpMethod", "GET"), event.get("path", "/"), event.get("headers") or {}, raw)
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store", **response.headers},
        "body": "" if response.body is None else json.dumps(response.body, separators=(",", ":")),
    }
