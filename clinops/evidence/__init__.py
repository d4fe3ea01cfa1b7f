"""The evidence trail: an append-only, hash-chained log of approvals, releases, verifications, rollbacks,
drills, drift incidents, gate verdicts, retraining and pin changes.

    log = EvidenceLog.s3(bucket, "evidence", stack="prod", kms_key_id=key_arn)   # or EvidenceLog.local(dir, "prod")
    entry = log.append("release", model="readmission-risk", package_arn=arn, actor=ci_identity,
                       reason="blue/green release after gate pass", details={"plan_sha256": digest})
    report = log.verify(expected_head=anchor)   # report.ok, report.problems (each with its seq)
    log.history("readmission-risk", version="3")

Record `log.head()` (or the returned `entry.anchor`) somewhere outside the log - the release's own evidence,
an SSM parameter - and pass it back as `expected_head`: only that detects a truncated tail. The canonical
encoding and hash are documented in `clinops.evidence.entry`; what verification can and cannot prove in
`clinops.evidence.verify`.
"""

from clinops.evidence.entry import GENESIS_HASH, Anchor, EvidenceEntry, EvidenceKind, canonical_json
from clinops.evidence.errors import (
    DamagedLogError,
    EntryFormatError,
    EvidenceConflictError,
    EvidenceError,
    EvidenceUnavailable,
    PHIError,
)
from clinops.evidence.local import LocalStore
from clinops.evidence.log import EvidenceLog
from clinops.evidence.phi import check_no_phi, find_phi
from clinops.evidence.report import Problem, ProblemKind, VerifyReport
from clinops.evidence.s3 import S3Store, parse_s3_uri
from clinops.evidence.store import EvidenceStore
from clinops.evidence.verify import StoredEntry, check_chain

__all__ = [
    "GENESIS_HASH",
    "Anchor",
    "DamagedLogError",
    "EntryFormatError",
    "EvidenceConflictError",
    "EvidenceEntry",
    "EvidenceError",
    "EvidenceKind",
    "EvidenceLog",
    "EvidenceStore",
    "EvidenceUnavailable",
    "LocalStore",
    "PHIError",
    "Problem",
    "ProblemKind",
    "S3Store",
    "StoredEntry",
    "VerifyReport",
    "canonical_json",
    "check_chain",
    "check_no_phi",
    "find_phi",
    "parse_s3_uri",
]
