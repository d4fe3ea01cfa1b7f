"""One evidence entry, its canonical encoding and its hash.

Canonical form - what the hash covers, and byte for byte what an entry file or object holds:

* the entry as one JSON object with every field present (an absent optional value is `null`);
* keys sorted at every level (Python `str` order, i.e. by code point), no whitespace (separators `,` `:`);
* UTF-8, non-ASCII characters written as themselves (`ensure_ascii=False`); NaN and Infinity are refused;
  numbers as Python's `json` writes them (shortest round-trip float repr);
* `at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds).

`hash` is the lowercase hex SHA-256 of the canonical form of every field except `hash` and `mac`;
`prev_hash` is the previous entry's `hash` (64 zeros for seq 0). `mac_key` (inside the hash) names the key
that sealed the entry; `mac` is the base64 HMAC-SHA-256 of the ASCII bytes `entry:` + `hash` under that key
(`clinops.evidence.mac`: a KMS HMAC key in AWS, a dev-only key file offline). The hash makes any change
visible; the MAC makes a *consistent* forgery (new fields, recomputed hash) impossible without the key. The
stored bytes are the canonical form of every field *including* `hash` and `mac`, followed by one `\\n`. An
auditor can recompute a hash without clinops, and check the MAC with the AWS CLI:

    python3 -c 'import hashlib, json, sys; e = json.load(open(sys.argv[1])); h = e.pop("hash"); e.pop("mac");
    print(h == hashlib.sha256(json.dumps(e, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()).hexdigest())' 000000000003.json
    aws kms verify-mac --key-id KEY --mac-algorithm HMAC_SHA_256 --message fileb://<(printf entry:HASH) --mac MAC
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from clinops.evidence.errors import EntryFormatError
from clinops.evidence.mac import MacKey, entry_message
from clinops.evidence.phi import check_no_phi

GENESIS_HASH = "0" * 64
_NO_MAC = "A" * 43 + "="  # a placeholder of the right shape while the hash is computed
SCHEMA_VERSION: Literal[2] = 2  # 2: keyed (mac_key, mac)
MAX_ENTRY_BYTES = 64 * 1024  # evidence is a record of decisions, not a data dump

_HEX64 = r"^[0-9a-f]{64}$"
_STACK = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"  # Pulumi stack names; also safe in S3 keys
_MODEL = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"  # the model slug of clinops.config
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[\w-]+/(\d+)$")
# Who acted: an IAM/STS ARN (`arn:aws:sts::123456789012:assumed-role/deployer/ci`) or a CI identity written
# `system:identity` (`github-actions:org/clinops:refs/heads/main`). One token, never a patient.
_ACTOR = r"^[a-z][a-z0-9+.-]*:\S{1,250}$"


class EvidenceKind(StrEnum):
    APPROVAL = "approval"
    RELEASE = "release"
    VERIFICATION = "verification"
    SHADOW = "shadow"  # a shadow-variant comparison report: prod canaries require a passing one
    ROLLBACK = "rollback"
    DRILL = "drill"
    DRIFT = "drift"
    GATE = "gate"
    RETRAINING = "retraining"
    PIN_CHANGE = "pin-change"
    CLINICIAN_FEEDBACK = "clinician-feedback"  # a CDS card accepted or overridden (serving/cds/feedback.py)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise EntryFormatError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Anchor(BaseModel):
    """A head recorded outside the log (release evidence, an SSM parameter): what a truncation cannot undo."""

    model_config = ConfigDict(frozen=True)

    seq: int | None = Field(default=None, ge=0, description="None when only the hash was recorded")
    hash: str = Field(pattern=_HEX64)

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """`SEQ:HASH` or a bare `HASH`."""
        seq, _, digest = text.strip().rpartition(":")
        try:
            return cls(seq=int(seq) if seq else None, hash=digest)
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"'{text}' is not an anchor; fix: give SEQ:HASH (64 hex digits) or HASH") from exc

    def __str__(self) -> str:
        return self.hash if self.seq is None else f"{self.seq}:{self.hash}"


class EvidenceEntry(BaseModel):
    """One immutable record: who did what to which model version, when and why, linked to its predecessor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2] = SCHEMA_VERSION
    seq: int = Field(ge=0, description="0-based position in the log; contiguous")
    kind: EvidenceKind
    stack: str = Field(pattern=_STACK)
    model: str = Field(pattern=_MODEL)
    model_version: str | None = Field(default=None, pattern=_VERSION)
    package_arn: str | None = None
    actor: str = Field(pattern=_ACTOR, description="IAM/STS ARN or `system:identity` of CI; never patient data")
    reason: str = Field(min_length=3, max_length=2000)
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(pattern=_HEX64)
    mac_key: str = Field(min_length=1, max_length=2048, description="id of the key that sealed the entry")
    hash: str = Field(pattern=_HEX64)
    mac: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="base64 HMAC-SHA-256 of 'entry:' + hash")

    @field_validator("model_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # Registries number versions; accept the int but store text, so "3" and 3 hash the same.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("package_arn")
    @classmethod
    def _package(cls, value: str | None) -> str | None:
        if value is not None and not _PACKAGE_ARN.match(value):
            raise ValueError(
                f"'{value}' is not a versioned model package ARN; "
                "fix: arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION"
            )
        return value

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp is naive; fix: pass a timezone-aware datetime (UTC)")
        return value.astimezone(UTC)

    @field_validator("details")
    @classmethod
    def _json_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            encoded = canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"details must be plain JSON (no NaN, sets, objects): {exc}") from None
        # A private deep copy: later changes to the caller's dict cannot alter a sealed entry.
        return json.loads(encoded)

    @model_validator(mode="after")
    def _consistent(self) -> EvidenceEntry:
        check_no_phi(self.details, self.reason)
        if self.package_arn is not None:
            arn_version = _PACKAGE_ARN.match(self.package_arn).group(1)  # type: ignore[union-attr]
            if self.model_version is None:
                object.__setattr__(self, "model_version", arn_version)
            elif self.model_version != arn_version:
                raise ValueError(
                    f"model_version '{self.model_version}' disagrees with package ARN version '{arn_version}'"
                )
        return self

    @field_serializer("at")
    def _at_text(self, value: datetime) -> str:
        # isoformat pads the year to four digits, which strftime("%Y") does not on every platform.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

    @classmethod
    def seal(cls, key: MacKey, **fields: Any) -> EvidenceEntry:
        """Validate `fields` (everything but `hash`, `mac` and `mac_key`) and return the entry with its hash and
        its MAC under `key` (a writer's key: KMS GenerateMac)."""
        draft = cls.model_validate({**fields, "mac_key": key.key_id, "hash": GENESIS_HASH, "mac": _NO_MAC})
        digest = draft.compute_hash()
        mac = base64.b64encode(key.generate(entry_message(digest))).decode("ascii")
        return draft.model_copy(update={"hash": digest, "mac": mac})

    def mac_valid(self, key: MacKey) -> bool:
        """True when `mac` is the MAC of this entry's stored hash under `key` (check the hash separately)."""
        try:
            mac = base64.b64decode(self.mac, validate=True)
        except (binascii.Error, ValueError):
            return False
        if base64.b64encode(mac).decode("ascii") != self.mac:
            return False  # base64 padding bits are free: only the canonical spelling is accepted, byte for byte
        return key.verify(entry_message(self.hash), mac)

    def payload(self) -> dict[str, Any]:
        """Every field except `hash` and `mac`, as JSON values: exactly what the hash covers."""
        return self.model_dump(mode="json", exclude={"hash", "mac"})

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.payload())).hexdigest()

    def to_bytes(self) -> bytes:
        data = canonical_json(self.model_dump(mode="json")) + b"\n"
        if len(data) > MAX_ENTRY_BYTES:
            raise ValueError(f"entry is {len(data)} bytes, over {MAX_ENTRY_BYTES}; fix: record a reference")
        return data

    @classmethod
    def from_bytes(cls, raw: bytes) -> EvidenceEntry:
        """Parse stored bytes. Says nothing about the hash or the encoding: verification checks those."""
        try:
            document = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
            return cls.model_validate(document)
        except UnicodeDecodeError as exc:
            raise EntryFormatError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise EntryFormatError(f"not JSON ({exc.msg} at byte {exc.pos})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise EntryFormatError(f"not an evidence entry ({where}: {first['msg']})") from None
        except ValueError as exc:  # PHI found while validating, or other value errors
            raise EntryFormatError(f"not an evidence entry ({exc})") from None

    @property
    def anchor(self) -> Anchor:
        return Anchor(seq=self.seq, hash=self.hash)
