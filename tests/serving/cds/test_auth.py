"""The EHR's JWT on every call (CDS Hooks 2.0): each failure is a 401 that says nothing of the token."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from serving.cds.auth import JwtVerifier, Unauthorized
from tests.serving.cds.conftest import BASE, ISSUER, JWKS_URL, Ehr, Harness

HOOK = "/cds-services/readmission-risk"


def unsigned(path: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": BASE + path, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, None, algorithm="none")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda h, p: h.ehr.token(p, iss="https://other-ehr.example"), "issuer not on the allow-list"),
        (lambda h, p: h.ehr.token(p, aud=BASE + "/cds-services/sepsis-warning"), "audience"),
        (lambda h, p: h.ehr.token(p, aud="https://attacker.example" + p), "audience"),
        (lambda h, p: h.ehr.token(p, exp=int(time.time()) - 60, iat=int(time.time()) - 120), "expired"),
        (lambda h, p: h.ehr.token(p, exp=int(time.time()) + 3600), "lives longer"),
        (lambda h, p: h.ehr.token(p, jti=None), "claim jti missing"),
        (lambda h, p: unsigned(p), "unsigned or symmetric"),
        (lambda h, p: jwt.encode({"iss": ISSUER, "aud": BASE + p}, "s" * 32, algorithm="HS256"), "symmetric"),
        (lambda h, p: Ehr(kid=h.ehr.kid).token(p), "signature does not verify"),
        (lambda h, p: Ehr(kid="unknown-kid").token(p), "kid"),
        (lambda h, p: "not-a-jwt", "not a JWT"),
        (lambda h, p: None, "no bearer token"),
    ],
)
def test_bad_tokens_are_401_on_every_path(harness: Harness, token, reason: str) -> None:
    for path, body in (("/cds-services", None), (HOOK, harness.hook()), (HOOK + "/feedback", {"feedback": []})):
        response = harness.call("GET" if body is None else "POST", path, body, token=token(harness, path))
        assert response.status == 401 and response.body == {"error": "Unauthorized"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    logged = [line["auth"] for line in harness.log_lines() if line["event"] == "unauthorized"]
    assert len(logged) == 3 and all(reason in r for r in logged), logged


def test_a_replayed_token_is_refused(harness: Harness) -> None:
    request = harness.hook()
    token = harness.ehr.token(HOOK)
    assert harness.call("POST", HOOK, request, token=token).status == 200
    assert harness.call("POST", HOOK, request, token=token).status == 401
    assert harness.log_lines()[-1]["auth"] == "token replayed (jti seen before)"


def test_a_valid_token_passes_and_the_key_set_is_cached() -> None:
    ehr, fetched = Ehr(), []

    def fetch(url: str) -> dict:
        fetched.append(url)
        return ehr.jwks()

    verifier = JwtVerifier({ISSUER: JWKS_URL}, fetch)
    for _ in range(3):
        assert verifier.verify(f"Bearer {ehr.token(HOOK)}", BASE + HOOK).issuer == ISSUER
    assert fetched == [JWKS_URL]


def test_an_unreachable_key_set_is_unauthorized_not_a_crash() -> None:
    def fetch(url: str) -> dict:
        raise OSError("network")

    with pytest.raises(Unauthorized, match="JWKS could not be read"):
        JwtVerifier({ISSUER: JWKS_URL}, fetch).verify(f"Bearer {Ehr().token(HOOK)}", BASE + HOOK)
