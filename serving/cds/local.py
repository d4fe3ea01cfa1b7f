"""The CDS service on loopback in front of the local inference container (`clinops cds serve --local`).

Locally there is no EHR and no AWS, so the same parts get local stand-ins that keep their formats:

* `LocalEhr`: an RSA key pair in the state directory standing in for the EHR's signing key; the service
  trusts its JWKS like any allow-listed issuer, and `clinops cds hook` signs with it.
* guardrails: `LocalGuardrails` files in the breaker's record format (`clinops cds circuit` writes them).
* evidence: a local evidence log; no CloudWatch metric (there is none to put to).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clinops.config import StackConfig
from clinops.evidence import EvidenceLog
from clinops.names import endpoint_name, package_version
from serving.cds.auth import JwtVerifier
from serving.cds.feedback import FeedbackRecorder, IssuedCards, KeyedHasher, LocalIssuanceStore
from serving.cds.fhirclient import HttpFhirFetcher
from serving.cds.guardrails import GuardrailView, LocalGuardrails
from serving.cds.logs import CdsLog
from serving.cds.scoring import HttpScorer, explanations_wanted
from serving.cds.server import CdsServer
from serving.cds.service import CdsService, CdsSettings, model_services
from serving.guardrails.state import IDLE, REQUESTED, BreakerState

LOCAL_ISSUER = "http://127.0.0.1/clinops-local-ehr"
LOCAL_ORIGIN = "http://127.0.0.1:8000"  # a local SMART app's origin, for trying CORS
GUARDRAIL_TTL_SECONDS = 0.5  # how long the service trusts a read of the local guardrail files


@dataclass
class LocalEhr:
    key: rsa.RSAPrivateKey
    kid: str = "local-ehr-1"
    issuer: str = LOCAL_ISSUER

    @classmethod
    def load_or_create(cls, state_dir: Path) -> LocalEhr:
        path = state_dir / "local-ehr-key.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(key)
        state_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        path.chmod(0o600)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS384", "use": "sig"}]}

    def token(self, audience: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "local-ehr", "aud": audience, "iat": now, "exp": now + 120,
                  "jti": str(uuid.uuid4())}  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS384", headers={"kid": self.kid})


def write_circuit(state_dir: Path, stack: str, model: str, package_version: int, *, open_: bool) -> Path:
    """A breaker record (its SSM format) with a rollback under way to the previous version, or an idle one."""
    current = f"{endpoint_name(stack, model)}-v{package_version}"
    previous = f"{endpoint_name(stack, model)}-v{max(1, package_version - 1)}"
    now = datetime.now(UTC).isoformat()
    state = BreakerState(
        outcome="rolling-back" if open_ else "idle",
        last_event_id="local-drill",
        alarm=f"{endpoint_name(stack, model)}-5xx-rate",
        alarm_at=now,
        decided_at=now,
        reason="opened by `clinops cds circuit --open`" if open_ else "closed by `clinops cds circuit --close`",
        phase=REQUESTED if open_ else IDLE,
        from_config=current if open_ else None,
        to_config=previous if open_ else None,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "guardrails" / f"{model}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"breaker": json.loads(state.to_json()), "pinned": current, "alarms": []}, indent=2))
    return path


def pinned_version(config: StackConfig, model: str) -> int:
    cfg = next(m for m in config.models if m.name == model)
    return package_version(cfg.package_arn) if cfg.package_arn else 1


def _explain(config: StackConfig, model: str) -> int:
    return next((explanations_wanted(m) for m in config.models if m.name == model), 0)


def start_local(
    config: StackConfig,
    model: str,
    inference_url: str,
    state_dir: Path,
    *,
    port: int = 8090,
    log: CdsLog | None = None,
) -> tuple[CdsServer, LocalEhr, threading.Thread]:
    """Bind the CDS server on 127.0.0.1:PORT for MODEL and serve it on a daemon thread."""
    ehr = LocalEhr.load_or_create(state_dir)
    jwks = ehr.jwks()
    hash_key_path = state_dir / "feedback-hash-key"
    if not hash_key_path.exists():
        hash_key_path.write_bytes(secrets.token_bytes(32))
        hash_key_path.chmod(0o600)
    # The audience is the URL the EHR calls: bind first (port 0 picks one), then name it.
    server = CdsServer(("127.0.0.1", port), None)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{server.server_address[1]}"
    service = CdsService(
        CdsSettings(base, config.stack, {ehr.issuer: "local"}, frozenset({LOCAL_ORIGIN})),
        model_services(
            config.models, {model: HttpScorer(inference_url, explain=_explain(config, model))}, only={model}
        ),
        JwtVerifier({ehr.issuer: "local"}, lambda url: jwks),
        GuardrailView(LocalGuardrails(state_dir / "guardrails"), ttl_seconds=GUARDRAIL_TTL_SECONDS),
        HttpFhirFetcher(allow_http=True),
        FeedbackRecorder(config.stack, EvidenceLog.local(state_dir / "evidence", config.stack), None),
        hasher=KeyedHasher(hash_key_path.read_bytes()),
        issued=IssuedCards(LocalIssuanceStore(state_dir / "issued")),
        log=log,
    )
    server.service = service
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return server, ehr, thread
