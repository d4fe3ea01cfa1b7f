"""A CDS service wired to fakes that behave like the real parts: RSA-signed EHR tokens and their JWKS, a
scorer answering in the container's JSON, breaker records in the breaker's own format, a FHIR server backed
by the synthetic patient's resources, a local evidence log and a recording CloudWatch."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from clinops.config import load_from_stack_file
from clinops.evidence import EvidenceLog
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.contracts.fhirmap import builtin_mapping_path, load_mapping
from pipelines.data.fhir import FhirStore, SyntheticPatient, hook_request, resources_for_row
from pipelines.data.sepsis import generate_sepsis
from pipelines.data.synthetic import generate_readmission
from serving.cds.auth import JwtVerifier
from serving.cds.feedback import FeedbackRecorder, IssuedCards, KeyedHasher, LocalIssuanceStore
from serving.cds.fhirclient import FhirFetchError
from serving.cds.guardrails import GuardrailView
from serving.cds.logs import CdsLog
from serving.cds.scoring import Score, ScoringError, parse_answer
from serving.cds.service import CdsService, CdsSettings, model_services
from serving.guardrails.state import BreakerState
from tests.conftest import REPO

BASE = "https://cds.hospital.example"
ISSUER, JWKS_URL = "https://ehr.hospital.example", "https://ehr.hospital.example/.well-known/jwks.json"
ORIGIN = "https://ehr.hospital.example"
READMISSION, SEPSIS = "readmission-risk", "sepsis-warning"


@dataclass
class Ehr:
    """The EHR's signing key; `token()` mints the JWT it sends with each call."""

    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = "ehr-1"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS384", "use": "sig"}]}

    def token(self, path: str, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "ehr-client", "aud": BASE + path, "iat": now, "exp": now + 240,
                  "jti": str(uuid.uuid4())}  # fmt: skip
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS384", headers={"kid": self.kid})


class FakeScorer:
    """The container's JSON answer for a fixed score; `hang`/`fail` make it misbehave like a bad endpoint."""

    def __init__(self, model: str, probability: float = 0.46, version: str = "3") -> None:
        self.model, self.probability, self.version = model, probability, version
        self.hang = 0.0
        self.fail: str | None = None
        self.variant: str | None = None
        self.calls: list[dict[str, Any]] = []

    def score(self, features: dict[str, Any], timeout: float) -> Score:
        self.calls.append(features)
        if self.hang:
            time.sleep(self.hang)
        if self.fail:
            raise ScoringError(self.fail)
        body = {"model": self.model, "model_version": self.version, "scores": [self.probability], "threshold": 0.3,
                "flags": [True], "explanations": [[{"feature": "prior_admissions_12m", "contribution": 0.12},
                                                    {"feature": "albumin", "contribution": -0.05},
                                                    {"feature": "charlson_index", "contribution": 0.08},
                                                    {"feature": "age", "contribution": 0.01}]]}  # fmt: skip
        return parse_answer(json.dumps(body).encode(), self.variant)


class FakeGuardrails:
    """The breaker's record (its own JSON format), the stack's pin and alarms, as the SSM/CloudWatch would hold."""

    def __init__(self) -> None:
        self.records: dict[str, BreakerState] = {}
        self.pinned: dict[str, str] = {}
        self.alarms: dict[str, list[str]] = {}
        self.broken = False

    def breaker(self, model: str) -> BreakerState | None:
        if self.broken:
            raise ConnectionError("ssm unreachable")
        record = self.records.get(model)
        return None if record is None else BreakerState.from_json(record.to_json())

    def pinned_config(self, model: str) -> str | None:
        return self.pinned.get(model)

    def alarms_in_force(self, model: str) -> list[str]:
        return self.alarms.get(model, [])


class FakeFhirServer:
    def __init__(self) -> None:
        self.store = FhirStore([])
        self.queries: list[tuple[str, str]] = []
        self.down = False

    def fetch(self, server: str, query: str, access_token: str, timeout: float) -> dict[str, Any] | None:
        if self.down:
            raise FhirFetchError("the FHIR server answered HTTP 503")
        self.queries.append((query, access_token))
        return self.store.search(query)


class RecordingCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@dataclass
class Harness:
    service: CdsService
    ehr: Ehr
    scorers: dict[str, FakeScorer]
    guardrails: FakeGuardrails
    fhir: FakeFhirServer
    cloudwatch: RecordingCloudWatch
    evidence: EvidenceLog
    log: io.StringIO
    config: Any
    another_instance: Callable[[], CdsService] = field(default=lambda: None)  # type: ignore[assignment,return-value]

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = "mint", **headers: str) -> Any:
        if token == "mint":
            token = self.ehr.token(path)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        raw = b"" if body is None else json.dumps(body).encode()
        return self.service.handle(method, path, headers, raw)

    def patient(self, model: str = READMISSION, row: int = 0, **changes: Any) -> SyntheticPatient:
        contract, mapping = load_contract(builtin_contract_path(model)), load_mapping(builtin_mapping_path(model))
        rows = (generate_readmission if model == READMISSION else generate_sepsis)(40, seed=11).to_dict("records")
        data = {**rows[row], **changes}
        synthetic = resources_for_row(data, mapping, contract, alternate_units=bool(row % 2))
        self.fhir.store = FhirStore(synthetic.resources)
        return synthetic

    def hook(
        self, model: str = READMISSION, synthetic: SyntheticPatient | None = None, omit: tuple[str, ...] = ()
    ) -> Any:
        cfg = next(m for m in self.config.models if m.name == model)
        synthetic = synthetic or self.patient(model)
        request = hook_request(cfg.cds.hook, cfg.cds.prefetch, synthetic, omit=omit)
        self.service.now = lambda: synthetic.now
        return request

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    config = load_from_stack_file("dev", REPO)
    scorers = {READMISSION: FakeScorer(READMISSION), SEPSIS: FakeScorer(SEPSIS, 0.12, "1")}
    ehr, guardrails, fhir, cloudwatch = Ehr(), FakeGuardrails(), FakeFhirServer(), RecordingCloudWatch()
    evidence = EvidenceLog.local(tmp_path / "evidence", "dev")
    log = io.StringIO()
    jwks = ehr.jwks()
    store = LocalIssuanceStore(tmp_path / "issued")  # what every instance of the function shares

    def instance() -> CdsService:
        """One more instance of the service (its own memory), as Lambda runs several."""
        return CdsService(
            CdsSettings(BASE, "dev", {ISSUER: JWKS_URL}, frozenset({ORIGIN})),
            model_services(config.models, scorers),
            JwtVerifier({ISSUER: JWKS_URL}, lambda url: jwks if url == JWKS_URL else {}),
            GuardrailView(guardrails, ttl_seconds=0),
            fhir,
            FeedbackRecorder("dev", evidence, cloudwatch),
            hasher=KeyedHasher(b"k" * 32),
            issued=IssuedCards(store),
            log=CdsLog(log),
            now=lambda: datetime.now().astimezone(),
        )

    return Harness(instance(), ehr, scorers, guardrails, fhir, cloudwatch, evidence, log, config, instance)
