"""Keys that seal evidence: a MAC on every entry and on the published head, so only a writer can add entries.

The hash chain alone is unkeyed: anyone who can write to the store can compute SHA-256 and append a valid-looking
entry. Each entry therefore also carries an HMAC-SHA-256 over its hash, made with a key that only the writers
may use to *generate* MACs:

* `KmsMacKey` - a KMS HMAC key (`HMAC_256`, usage `GENERATE_VERIFY_MAC`). The key material never leaves KMS;
  IAM and the key policy allow `kms:GenerateMac` to the writers (deployer, release/verify role, guardrail
  Lambdas) and `kms:VerifyMac` to the verifiers (approver, auditor, writers). A reader cannot forge an entry.
* `LocalMacKey` - **development only**: HMAC with 32 random bytes in a local file (mode 0600). Whoever can read
  that file can forge entries, so it protects nothing against a local user; it exists so the offline path
  (tests, `make demo`) runs the same sealing and verification code as S3 + KMS.

Messages are domain-separated (`entry:` / `anchor:`), so an entry's MAC can never pass as a head's.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from clinops.evidence.errors import EvidenceError, EvidenceUnavailable

MAC_ALGORITHM = "HMAC_SHA_256"  # KMS's name; the local key computes the same function
LOCAL_KEY_BYTES = 32
LOCAL_KEY_ID_PREFIX = "local-dev:"


class MacKey(Protocol):
    @property
    def key_id(self) -> str:
        """Recorded in each entry (`mac_key`); verification always uses the configured key, not this."""
        ...

    def generate(self, message: bytes) -> bytes: ...

    def verify(self, message: bytes, mac: bytes) -> bool: ...


def entry_message(entry_hash: str) -> bytes:
    return b"entry:" + entry_hash.encode("ascii")


def anchor_message(stack: str, seq: int, entry_hash: str) -> bytes:
    return f"anchor:{stack}:{seq}:{entry_hash}".encode()


class LocalMacKey:
    """HMAC-SHA-256 with a key file. Development only (see the module note)."""

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        # Loaded on first use, and created only when a writer first needs it: opening a log (a dry run) writes
        # nothing, and verifying never invents a key that could not have sealed the entries.
        self.path = Path(path)
        self._may_create = create
        self._key: bytes | None = None

    def _material(self, *, writing: bool) -> bytes:
        if self._key is not None:
            return self._key
        if not self.path.is_file():
            if not (writing and self._may_create):
                raise EvidenceUnavailable(
                    f"{self.path}: no evidence MAC key file; fix: pass the key file the log was written with "
                    "(--mac-key-file) - a new key cannot verify old entries"
                )
            self._create()
        try:
            key = bytes.fromhex(self.path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise EvidenceUnavailable(f"{self.path}: unreadable evidence MAC key ({exc})") from None
        if len(key) < LOCAL_KEY_BYTES:
            raise EvidenceUnavailable(f"{self.path}: evidence MAC key shorter than {LOCAL_KEY_BYTES} bytes")
        self._key = key
        return key

    @property
    def key_id(self) -> str:
        fingerprint = hashlib.sha256(b"clinops-evidence-key-id:" + self._material(writing=True)).hexdigest()[:16]
        return LOCAL_KEY_ID_PREFIX + fingerprint

    def _create(self) -> None:
        """Write the key whole to a temporary file, then publish it with link(2): a racing writer either wins or
        finds the complete file of the winner - never an empty one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # mode 0600
        except OSError as exc:
            raise EvidenceUnavailable(f"{self.path}: cannot create the evidence MAC key ({exc})") from exc
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(LOCAL_KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another writer created it first: use theirs
                os.link(temp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def __repr__(self) -> str:
        return f"LocalMacKey({str(self.path)!r})"

    def generate(self, message: bytes) -> bytes:
        return hmac.new(self._material(writing=True), message, hashlib.sha256).digest()

    def verify(self, message: bytes, mac: bytes) -> bool:
        expected = hmac.new(self._material(writing=False), message, hashlib.sha256).digest()
        return hmac.compare_digest(expected, mac)


class KmsMacKey:
    """A KMS HMAC key: `GenerateMac` for writers, `VerifyMac` for verifiers."""

    def __init__(self, key_id: str, client: Any = None) -> None:
        if not key_id:
            raise EvidenceError("the evidence MAC key id is empty; fix: pass the stack's evidence HMAC key ARN")
        import boto3  # here, so local use never touches AWS configuration

        self.key_id = key_id
        self.client = client if client is not None else boto3.client("kms")

    def __repr__(self) -> str:
        return f"KmsMacKey({self.key_id!r})"

    def generate(self, message: bytes) -> bytes:
        try:
            return bytes(
                self.client.generate_mac(KeyId=self.key_id, Message=message, MacAlgorithm=MAC_ALGORITHM)["Mac"]
            )
        except (ClientError, BotoCoreError) as exc:
            raise EvidenceUnavailable(f"KMS GenerateMac with {self.key_id} failed: {exc}") from exc

    def verify(self, message: bytes, mac: bytes) -> bool:
        try:
            response = self.client.verify_mac(KeyId=self.key_id, Message=message, MacAlgorithm=MAC_ALGORITHM, Mac=mac)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "KMSInvalidMacException":
                return False  # KMS answers a wrong MAC with this error, not MacValid=false
            raise EvidenceUnavailable(f"KMS VerifyMac with {self.key_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise EvidenceUnavailable(f"KMS VerifyMac with {self.key_id} failed: {exc}") from exc
        return bool(response.get("MacValid"))
