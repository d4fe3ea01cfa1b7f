"""The entry: canonical form, hash, validation rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from clinops.evidence import (
    GENESIS_HASH,
    Anchor,
    EntryFormatError,
    EvidenceEntry,
    EvidenceKind,
    LocalMacKey,
    canonical_json,
    local_key_path,
)
from tests.clinops.evidence.helpers import APPROVER, CI, DEPLOYER, KEY, MODEL, entry_path, filled_log, package_arn

AT = datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)


def sealed(**changes: object) -> EvidenceEntry:
    fields: dict[str, object] = {
        "seq": 0,
        "kind": "release",
        "stack": "prod",
        "model": MODEL,
        "actor": DEPLOYER,
        "reason": "release v3",
        "at": AT,
        "prev_hash": GENESIS_HASH,
        **changes,
    }
    return EvidenceEntry.seal(KEY, **fields)


def test_hash_covers_every_other_field_in_canonical_json() -> None:
    entry = sealed(details={"b": [1, 2.5], "a": "é"})
    payload = {k: v for k, v in json.loads(entry.to_bytes()).items() if k not in ("hash", "mac")}
    expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert entry.hash == hashlib.sha256(expected).hexdigest()
    assert set(payload) == set(EvidenceEntry.model_fields) - {"hash", "mac"}
    assert payload["mac_key"] == KEY.key_id  # which key sealed it is covered by the hash


def test_mac_is_hmac_sha256_of_the_hash_under_the_writers_key() -> None:
    entry = sealed()
    key_bytes = bytes.fromhex(KEY.path.read_text().strip())
    expected = hmac.new(key_bytes, b"entry:" + entry.hash.encode(), hashlib.sha256).digest()
    assert base64.b64decode(entry.mac) == expected
    assert entry.mac_valid(KEY)
    other = LocalMacKey(KEY.path.parent / "other.mac-key", create=True)
    other.generate(b"")  # a writer's first use creates the key
    assert not entry.mac_valid(other)
    assert not entry.model_copy(update={"hash": "f" * 64}).mac_valid(KEY)  # the MAC is bound to the hash


def test_stored_bytes_are_canonical_with_one_newline() -> None:
    entry = sealed(details={"z": 1, "a": {"y": None, "b": "ü"}})
    raw = entry.to_bytes()
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
    assert b" " not in raw.replace(b"release v3", b"")  # no whitespace outside values
    assert "ü".encode() in raw  # UTF-8, not \\u escapes
    assert raw == canonical_json(json.loads(raw)) + b"\n"


def test_timestamp_is_utc_with_microseconds() -> None:
    entry = sealed(at=datetime(2025, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))))
    assert json.loads(entry.to_bytes())["at"] == "2025-03-01T12:30:05.123456Z"


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        sealed(at=datetime(2025, 3, 1))


def test_round_trip_through_bytes_is_exact() -> None:
    entry = sealed(package_arn=package_arn(3), details={"f": 0.1, "n": 10**20, "s": "line\nbreak"})
    assert EvidenceEntry.from_bytes(entry.to_bytes()) == entry
    assert EvidenceEntry.from_bytes(entry.to_bytes()).to_bytes() == entry.to_bytes()


def test_version_comes_from_the_package_arn_and_must_agree() -> None:
    assert sealed(package_arn=package_arn(3)).model_version == "3"
    assert sealed(model_version=3).model_version == "3"
    with pytest.raises(ValidationError, match="disagrees"):
        sealed(package_arn=package_arn(3), model_version="4")
    with pytest.raises(ValidationError, match="versioned model package ARN"):
        sealed(package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package-group/readmission-risk")


@pytest.mark.parametrize("actor", [DEPLOYER, APPROVER, CI, "ci:jenkins/clinops/42"])
def test_actor_accepts_arns_and_ci_identities(actor: str) -> None:
    assert sealed(actor=actor).actor == actor


@pytest.mark.parametrize("actor", ["Jane Doe", "jane", "", "arn:aws:iam::123456789012:role/a b"])
def test_actor_refuses_free_text(actor: str) -> None:
    with pytest.raises(ValidationError, match="actor"):
        sealed(actor=actor)


def test_every_kind_of_the_brief_exists() -> None:
    assert {k.value for k in EvidenceKind} == {
        "approval",
        "release",
        "verification",
        "shadow",
        "rollback",
        "drill",
        "drift",
        "gate",
        "retraining",
        "pin-change",
        "clinician-feedback",  # issue 16: CDS cards accepted / overridden
    }
    with pytest.raises(ValidationError, match="kind"):
        sealed(kind="deploy")


@pytest.mark.parametrize("details", [{"x": float("nan")}, {"x": {1, 2}}, {"x": object()}])
def test_details_must_be_plain_json(details: dict) -> None:
    with pytest.raises(ValidationError, match="plain JSON"):
        sealed(details=details)


def test_details_are_copied_so_the_caller_cannot_change_a_sealed_entry() -> None:
    details = {"verdict": {"passed": True}}
    entry = sealed(details=details)
    details["verdict"]["passed"] = False
    assert entry.details == {"verdict": {"passed": True}}
    assert entry.compute_hash() == entry.hash


def test_entries_are_frozen_and_refuse_unknown_fields() -> None:
    entry = sealed()
    with pytest.raises(ValidationError):
        entry.reason = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        sealed(patient="x")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"seq": 0,', "not JSON"),
        (b"[1, 2]", "not an evidence entry"),
        (b'{"seq":0,"seq":1}', "duplicate keys"),
    ],
)
def test_unparseable_bytes_say_why(raw: bytes, message: str) -> None:
    with pytest.raises(EntryFormatError, match=message):
        EvidenceEntry.from_bytes(raw)


def test_anchor_parses_seq_and_hash_or_hash_alone() -> None:
    digest = "ab" * 32
    assert Anchor.parse(f"7:{digest}") == Anchor(seq=7, hash=digest)
    assert Anchor.parse(digest) == Anchor(seq=None, hash=digest)
    assert str(Anchor(seq=7, hash=digest)) == f"7:{digest}"
    for bad in ("7:abc", "x:" + digest, "-1:" + digest, ""):
        with pytest.raises(ValueError, match="not an anchor"):
            Anchor.parse(bad)


def test_an_auditor_can_recompute_hashes_and_links_without_clinops(tmp_path: Path) -> None:
    filled_log(tmp_path)
    previous = GENESIS_HASH
    for seq in range(6):
        document = json.loads(entry_path(tmp_path, seq).read_text(encoding="utf-8"))
        stored = document.pop("hash")
        mac = base64.b64decode(document.pop("mac"))
        encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert hashlib.sha256(encoded).hexdigest() == stored
        assert document["prev_hash"] == previous
        # With the key (KMS VerifyMac in AWS; the dev key file here) the MAC is checkable without clinops too.
        key_bytes = bytes.fromhex(local_key_path(tmp_path).read_text().strip())
        assert hmac.compare_digest(mac, hmac.new(key_bytes, b"entry:" + stored.encode(), hashlib.sha256).digest())
        previous = stored
