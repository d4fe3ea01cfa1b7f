"""S3 backend: key `{prefix}/{stack}/{seq:012d}.json` in the Object Lock evidence bucket.

Writes use `PutObject` with `IfNoneMatch='*'`: S3 refuses (412 PreconditionFailed, or 409
ConditionalRequestConflict while a racing write is in flight) to create a key that exists, so two writers
cannot both own one seq and the log retries with the new head. Objects are SSE-KMS with the given key.
Retention is not set per object: the bucket's default Object Lock rule (COMPLIANCE) applies, and `inspect`
records that rule. Because the bucket is versioned, an overwrite or delete by someone bypassing clinops
leaves the original locked version behind; `inspect` lists every version (`s3:ListBucketVersions`), reads the
lock configuration (`s3:GetBucketObjectLockConfiguration`) and checks every version of every entry key
(`s3:GetObjectVersion`: hash and MAC), so an overwrite (a new current version) or a delete marker is reported
with the version that holds the sealed original. When it may not list versions or read the lock, the log is
reported `unverifiable` - not intact: the roles that verify are granted these rights (infra/identity.py).
The bucket policy (infra/storage.py) already refuses deletes and overwrites on the evidence prefix; this is
the check that the policy held.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from clinops.evidence.entry import EvidenceEntry
from clinops.evidence.errors import EntryFormatError, EvidenceError, EvidenceUnavailable
from clinops.evidence.mac import MacKey
from clinops.evidence.report import Problem, ProblemKind
from clinops.evidence.store import ENTRY_NAME, StoreInspection, entry_name

CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# The platform's evidence prefix: Lambdas write under it, the bucket policy makes it append-only and CloudTrail
# records data events on it (the trail's own deliveries go to another prefix of the same bucket).
EVIDENCE_PREFIX = "evidence"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix); the prefix may be empty."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"'{uri}' is not an S3 location; fix: s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        stack: str,
        *,
        kms_key_id: str | None = None,
        client: Any = None,
        key: MacKey | None = None,
    ):
        import boto3  # imported here so the local backend works without touching AWS configuration

        self.bucket = bucket
        self.base = "/".join(part for part in (prefix.strip("/"), stack) if part)
        self.kms_key_id = kms_key_id
        self.mac_key = key  # checks every stored version's MAC; without it only hashes are checked
        self.client = client if client is not None else boto3.client("s3")

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.base}/')"

    def key(self, seq: int) -> str:
        return f"{self.base}/{entry_name(seq)}"

    def _seq_of(self, key: str) -> int | None:
        head, _, name = key.rpartition("/")
        match = ENTRY_NAME.match(name)
        return int(match.group(1)) if match and head == self.base else None

    def _unavailable(self, what: str, exc: Exception) -> EvidenceUnavailable:
        if isinstance(exc, ClientError):
            detail = f"{_code(exc)} {exc.response.get('Error', {}).get('Message', '')}".strip()
        else:  # BotoCoreError: no credentials, no endpoint, ...
            detail = str(exc)
        return EvidenceUnavailable(f"s3://{self.bucket}/{self.base}/: {what} failed: {detail}")

    @contextmanager
    def _aws(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(what, exc) from exc

    def _list_keys(self, after: int = -1) -> list[str]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{self.base}/"}
        if after >= 0:
            params["StartAfter"] = self.key(after)  # keys sort by seq, so only newer entries are listed
        with self._aws("ListObjectsV2"):
            pages = self.client.get_paginator("list_objects_v2").paginate(**params)
            return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def seqs(self, after: int = -1) -> list[int]:
        return sorted(seq for seq in map(self._seq_of, self._list_keys(after)) if seq is not None and seq > after)

    def read(self, seq: int) -> bytes:
        with self._aws(f"GetObject {self.key(seq)}"):
            return self.client.get_object(Bucket=self.bucket, Key=self.key(seq))["Body"].read()

    def create(self, seq: int, data: bytes) -> bool:
        if not self.kms_key_id:
            raise EvidenceError("writing evidence to S3 needs the evidence KMS key id (SSE-KMS is mandatory)")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(seq),
                Body=data,
                IfNoneMatch="*",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.kms_key_id,
                # Object Lock buckets reject uploads without an integrity checksum; ask for one explicitly.
                ChecksumAlgorithm="SHA256",
                ContentType="application/json",
            )
        except ClientError as exc:
            if _code(exc) in CONFLICT_CODES:
                return False
            raise self._unavailable(f"PutObject {self.key(seq)}", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(f"PutObject {self.key(seq)}", exc) from exc
        return True

    def inspect(self) -> StoreInspection:
        location: dict[str, Any] = {"backend": "s3", "bucket": self.bucket, "prefix": f"{self.base}/"}
        warnings: list[str] = []
        with self._aws("HeadBucket"):
            self.client.head_bucket(Bucket=self.bucket)
        problems: list[Problem] = []
        location["object_lock"] = self._lock_configuration(warnings, problems)
        problems += self._version_anomalies()
        strays = [key for key in self._list_keys() if self._seq_of(key) is None]
        warnings += [f"s3://{self.bucket}/{key}: not an entry key; ignored" for key in strays]
        return StoreInspection(location=location, problems=problems, warnings=warnings)

    def _lock_configuration(self, warnings: list[str], problems: list[Problem]) -> dict[str, Any] | None:
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
        except ClientError as exc:
            if _code(exc) == "ObjectLockConfigurationNotFoundError":
                warnings.append("the bucket has no Object Lock configuration: entries are not write-once")
            else:
                message = (
                    f"Object Lock configuration unreadable ({_code(exc)}): cannot confirm entries are write-once; "
                    "fix: verify with a role granted s3:GetBucketObjectLockConfiguration (approver, auditor, deployer)"
                )
                problems.append(Problem(seq=None, kind=ProblemKind.UNVERIFIABLE, message=message))
            return None
        mode = config.get("Rule", {}).get("DefaultRetention", {}).get("Mode")
        if config.get("ObjectLockEnabled") != "Enabled" or mode != "COMPLIANCE":
            warnings.append(f"Object Lock default retention is {mode or 'not set'}, not COMPLIANCE")
        return config

    def _version_anomalies(self) -> list[Problem]:
        """Keys written more than once or hidden by a delete marker: only possible by bypassing clinops."""
        versions: Counter[int] = Counter()
        version_ids: dict[int, list[str]] = {}
        hidden: dict[int, bool] = {}
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=f"{self.base}/"
            )
            for page in pages:
                for version in page.get("Versions", []):
                    if (seq := self._seq_of(version["Key"])) is not None:
                        versions[seq] += 1
                        version_ids.setdefault(seq, []).append(version["VersionId"])
                for marker in page.get("DeleteMarkers", []):
                    if (seq := self._seq_of(marker["Key"])) is not None:
                        hidden[seq] = hidden.get(seq, False) or bool(marker.get("IsLatest"))
        except ClientError as exc:
            message = (
                f"object versions unreadable ({_code(exc)}): overwrites and deletes cannot be ruled out; "
                "fix: verify with a role granted s3:ListBucketVersions and s3:GetObjectVersion"
            )
            return [Problem(seq=None, kind=ProblemKind.UNVERIFIABLE, message=message)]
        problems = [
            Problem(
                seq=seq,
                kind=ProblemKind.OVERWRITTEN,
                message=f"{self.key(seq)} holds {count} versions: it was written again after clinops created it; "
                f"{self._sealed_versions(seq, version_ids[seq])}",
            )
            for seq, count in sorted(versions.items())
            if count > 1
        ]
        problems += [
            Problem(
                seq=seq,
                kind=ProblemKind.DELETED,
                message=f"{self.key(seq)} was deleted ({'hidden by' if latest else 'has'} a delete marker); "
                "its locked version remains and can be restored",
            )
            for seq, latest in sorted(hidden.items())
        ]
        return problems

    def _sealed_versions(self, seq: int, version_ids: list[str]) -> str:
        """Check every version of an overwritten key: which ones are sealed entries (hash and MAC verify)."""
        sealed: list[str] = []
        other: list[str] = []
        for version_id in version_ids:
            try:
                with self._aws(f"GetObject {self.key(seq)} version {version_id}"):
                    raw = self.client.get_object(Bucket=self.bucket, Key=self.key(seq), VersionId=version_id)
                entry = EvidenceEntry.from_bytes(raw["Body"].read())
                ok = entry.compute_hash() == entry.hash and entry.seq == seq
                ok = ok and (self.mac_key is None or entry.mac_valid(self.mac_key))
            except (EntryFormatError, EvidenceUnavailable):
                ok = False
            (sealed if ok else other).append(version_id)
        return (
            f"sealed version(s) {sealed or 'none'}, not sealed {other or 'none'}; "
            "the locked versions remain under Object Lock"
        )
