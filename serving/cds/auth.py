"""The EHR's signed JWT on every CDS Hooks call (CDS Hooks 2.0, "Trusting CDS Clients").

Checked, in order: a bearer token is present; its header asks for an asymmetric algorithm (never `none`, never
an HMAC: a shared secret is not the spec's trust model); `iss` is on the allow-list; the signature verifies
with a key of that issuer's configured JWKS (by `kid`; `jku` in the token is ignored: the key set comes from
configuration, not from the caller); `aud` is this service's URL; `exp`, `iat` and `jti` are present, `exp`
not past and at most `MAX_LIFETIME_SECONDS` ahead (the spec's five minutes, which also bounds the replay
cache); `jti` not seen before from that issuer. Any failure is `Unauthorized` with a reason for the log - the
reason never carries the token or its claims.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS384", "PS256")
MAX_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 5  # clock skew between the EHR and this service
JWKS_TTL_SECONDS = 300
JWKS_MIN_REFRESH_SECONDS = 30  # an unknown kid refetches the key set at most this often (no fetch amplification)


class Unauthorized(Exception):
    """Answer 401. `reason` is safe to log: it names the failed check, never the token's content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    issuer: str
    subject: str | None


class _KeySet:
    def __init__(self, url: str, fetch: Callable[[str], Mapping[str, Any]], clock: Callable[[], float]) -> None:
        self.url, self.fetch, self.clock = url, fetch, clock
        self.keys: dict[str | None, Any] = {}
        self.fetched_at = -1e18

    def key(self, kid: str | None) -> Any:
        now = self.clock()
        stale = now - self.fetched_at > JWKS_TTL_SECONDS
        unknown = kid not in self.keys and now - self.fetched_at > JWKS_MIN_REFRESH_SECONDS
        if stale or unknown:
            try:
                jwk_set = jwt.PyJWKSet.from_dict(dict(self.fetch(self.url)))
            except Exception as exc:  # network, JSON, no usable key: the call cannot be trusted
                raise Unauthorized(f"the issuer's JWKS could not be read ({type(exc).__name__})") from None
            self.keys = {k.key_id: k for k in jwk_set.keys}
            if len(jwk_set.keys) == 1:
                self.keys.setdefault(None, jwk_set.keys[0])
            self.fetched_at = now
        found = self.keys.get(kid)
        if found is None:
            raise Unauthorized("no key of the issuer's JWKS matches the token's kid")
        return found


class JwtVerifier:
    def __init__(
        self,
        issuers: Mapping[str, str],
        fetch_jwks: Callable[[str], Mapping[str, Any]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`issuers`: allowed `iss` -> the URL of its JWKS."""
        self.clock = clock
        self._keysets = {iss: _KeySet(url, fetch_jwks, clock) for iss, url in issuers.items()}
        self._seen: dict[tuple[str, str], float] = {}  # (iss, jti) -> exp
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, audience: str) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no bearer token")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"algorithm {str(header.get('alg'))[:10]!r} is not accepted (unsigned or symmetric)")
        issuer = unverified.get("iss")
        keyset = self._keysets.get(issuer) if isinstance(issuer, str) else None
        if keyset is None or not isinstance(issuer, str):
            raise Unauthorized("issuer not on the allow-list")
        key = keyset.key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[header["alg"]],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("audience is not this service's URL") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"claim {exc.claim} missing") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"token rejected ({type(exc).__name__})") from None
        now = self.clock()
        exp = float(claims["exp"])
        if exp - now > MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise Unauthorized(f"token lives longer than {MAX_LIFETIME_SECONDS} s")
        self._remember(issuer, str(claims["jti"]), exp, now)
        return Caller(issuer, claims.get("sub"))

    def _remember(self, issuer: str, jti: str, exp: float, now: float) -> None:
        with self._lock:
            if len(self._seen) > 1024:  # drop what has expired: an expired token fails before this check
                self._seen = {k: v for k, v in self._seen.items() if v + LEEWAY_SECONDS >= now}
            if (issuer, jti) in self._seen:
                raise Unauthorized("token replayed (jti seen before)")
            self._seen[(issuer, jti)] = exp
