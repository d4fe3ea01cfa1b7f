"""The evidence this package writes and reads, through the evidence log API (`clinops.evidence`).

Layout: one hash-chained log per stack, `DIR/<stack>/` locally and `s3://BUCKET/PREFIX/<stack>/` in S3 (the
S3 backend's own layout), so `clinops evidence verify --log DIR/<stack>` checks what release wrote.

Entries written here, each with `details.check` naming what it records:
- `release`       check=release:            who/what/why, outcome, gate verdict and plan hash, review facts;
- `verification`  check=deployment:         `clinops verify` (passed or not, with every finding);
- `shadow`        check=shadow-comparison:  `clinops shadow report`.
Readers select by `details.check` (and package), so a new kind of entry never changes what promotion reads.
Promotion reads only entries of a log that verifies: a tampered log proves nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinops.evidence import EvidenceEntry, EvidenceError, EvidenceKind, EvidenceLog, parse_s3_uri
from clinops.exitcodes import EvidenceUnavailable, UnusableInput

CHECK_RELEASE = "release"
CHECK_DEPLOYMENT = "deployment"
CHECK_SHADOW = "shadow-comparison"


@dataclass(frozen=True)
class EvidenceLocation:
    """Where every stack's log lives: a local directory or an S3 prefix (a central audit bucket). In S3 the log is
    sealed with the stack's KMS HMAC key and written with its SSE-KMS evidence key: `mac_key_id` / `kms_key_id`,
    by default from CLINOPS_EVIDENCE_MAC_KEY / CLINOPS_EVIDENCE_KMS_KEY (stack outputs evidenceMacKeyArn /
    evidenceKeyArn)."""

    spec: str
    s3_client: Any = None
    mac_key_id: str | None = None
    kms_key_id: str | None = None

    @classmethod
    def parse(cls, spec: str, s3_client: Any = None) -> EvidenceLocation:
        if spec.startswith("s3://"):
            try:
                parse_s3_uri(spec)
            except ValueError as exc:
                raise UnusableInput(str(exc)) from None
        env = os.environ
        return cls(spec, s3_client, env.get("CLINOPS_EVIDENCE_MAC_KEY"), env.get("CLINOPS_EVIDENCE_KMS_KEY"))

    def log(self, stack: str) -> EvidenceLog:
        if self.spec.startswith("s3://"):
            if not self.mac_key_id:
                raise UnusableInput(
                    f"evidence in {self.spec} is sealed with the stack's KMS HMAC key; fix: set "
                    "CLINOPS_EVIDENCE_MAC_KEY to the stack output evidenceMacKeyArn"
                )
            bucket, prefix = parse_s3_uri(self.spec)
            return EvidenceLog.s3(
                bucket, prefix, stack, mac_key_id=self.mac_key_id, kms_key_id=self.kms_key_id, client=self.s3_client
            )
        return EvidenceLog.local(Path(self.spec) / stack, stack)

    def describe(self, stack: str) -> str:
        return f"{self.spec.rstrip('/')}/{stack}"


def record(
    log: EvidenceLog,
    kind: str,
    check: str,
    *,
    model: str,
    package_arn: str | None,
    actor: str,
    reason: str,
    details: dict[str, Any],
) -> EvidenceEntry:
    try:
        return log.append(
            EvidenceKind(kind),
            model=model,
            package_arn=package_arn,
            actor=actor,
            reason=reason,
            details={"check": check, **details},
        )
    except (EvidenceError, ValueError) as exc:
        raise EvidenceUnavailable(f"could not write evidence to {log.store!r}: {exc}") from None


def trusted_history(log: EvidenceLog, model: str) -> list[EvidenceEntry]:
    """The model's entries, only if the whole log verifies (a decision must not rest on a tampered log)."""
    try:
        if not log.store.seqs():
            return []  # nobody wrote to this stack's log yet: no evidence, which promotion treats as "not done"
        report, chain = log.check()
    except EvidenceError as exc:
        raise EvidenceUnavailable(f"cannot read evidence {log.store!r}: {exc}") from None
    if not report.ok:
        raise EvidenceUnavailable(
            f"evidence log {log.store!r} does not verify ({len(report.problems)} problem(s), first: "
            f"{report.problems[0]}); fix: `clinops evidence verify` and have the evidence owner investigate"
        )
    return [e for _, e in sorted(chain.trusted.items()) if e.model == model]


def latest(entries: list[EvidenceEntry], check: str, package_arn: str) -> EvidenceEntry | None:
    """The newest entry of this check for this package: a later failure overrides an earlier pass."""
    matching = [e for e in entries if e.details.get("check") == check and e.package_arn == package_arn]
    return matching[-1] if matching else None


def passed(entry: EvidenceEntry | None) -> bool:
    return entry is not None and entry.details.get("passed") is True
