"""The evidence trail: an append-only, hash-chained log of approvals, releases, verifications, rollbacks,
drills, drift incidents, gate verdicts, retraining and pin changes.

    log = EvidenceLog.s3(bucket, "evidence", stack="prod", mac_key_id=hmac_key_arn, kms_key_id=key_arn)
    # or EvidenceLog.local(dir, "prod"): dev-only key file DIR.mac-key, head published to DIR.head
    entry = log.append("release", model="readmission-risk", package_arn=arn, actor=ci_identity,
                       reason="blue/green release after gate pass", details={"plan_sha256": digest})
    report = log.verify(expected_head=anchor)   # report.ok, report.problems (each with its seq)
    log.history("readmission-risk", version="3")

Every entry carries a MAC under the log's key (KMS HMAC in AWS), and every append publishes the head outside
the log (an SSM parameter; `DIR.head` offline), which `verify` reads: a forged append, a truncated tail and a
rewritten last entry are found without a manually kept anchor (`expected_head` still adds one). The canonical
encoding and hash are documented in `clinops.evidence.entry`; what verification can and cannot prove in
`clinops.evidence.verify`.
"""

from clinops.evidence.anchor import FileHeadStore, HeadStore, PublishedHead, SsmHeadStore, head_parameter_name
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
from clinops.evidence.log import EvidenceLog, HeadNotPublished, local_head_path, local_key_path
from clinops.evidence.mac import KmsMacKey, LocalMacKey, MacKey
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
    "FileHeadStore",
    "HeadNotPublished",
    "HeadStore",
    "KmsMacKey",
    "LocalMacKey",
    "LocalStore",
    "MacKey",
    "PHIError",
    "Problem",
    "ProblemKind",
    "PublishedHead",
    "S3Store",
    "SsmHeadStore",
    "StoredEntry",
    "VerifyReport",
    "canonical_json",
    "check_chain",
    "check_no_phi",
    "find_phi",
    "head_parameter_name",
    "local_head_path",
    "local_key_path",
    "parse_s3_uri",
]
