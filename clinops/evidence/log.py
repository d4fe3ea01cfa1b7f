"""The evidence log: append-only and hash-chained over a store (local directory or S3).

Concurrency: `append` reads the head, links a new entry to it and asks the store to *create* the next seq.
The store never overwrites (link(2) locally, `IfNoneMatch='*'` on S3), so of two racing writers exactly one
wins the seq; the other re-reads the head and retries, a bounded number of times. No fork, no lost entry.

Failure policy: `append` fails closed - it refuses to link to a head entry that does not verify, and raises
when it cannot write. Code that performs a safety action (a rollback) should act first and record after.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from clinops.evidence.entry import GENESIS_HASH, Anchor, EvidenceEntry, EvidenceKind, utc_now
from clinops.evidence.errors import DamagedLogError, EntryFormatError, EvidenceConflictError, EvidenceError
from clinops.evidence.local import LocalStore
from clinops.evidence.phi import check_no_phi
from clinops.evidence.report import VerifyReport
from clinops.evidence.store import EvidenceStore
from clinops.evidence.verify import ChainCheck, StoredEntry, check_chain

DEFAULT_MAX_ATTEMPTS = 16
_BACKOFF_BASE_SECONDS = 0.002
_BACKOFF_CAP_SECONDS = 0.2


class _Head(NamedTuple):
    seq: int
    hash: str


class EvidenceLog:
    def __init__(
        self,
        store: EvidenceStore,
        stack: str | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.stack = stack
        self._clock = clock
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._known_head: _Head | None = None  # a hint only: entries are immutable, so it can be stale, not wrong

    @classmethod
    def local(cls, root: Path | str, stack: str | None = None, **options: Any) -> EvidenceLog:
        return cls(LocalStore(root), stack, **options)

    @classmethod
    def s3(
        cls,
        bucket: str,
        prefix: str,
        stack: str,
        *,
        kms_key_id: str | None = None,
        client: Any = None,
        **options: Any,
    ) -> EvidenceLog:
        from clinops.evidence.s3 import S3Store

        return cls(S3Store(bucket, prefix, stack, kms_key_id=kms_key_id, client=client), stack, **options)

    def __repr__(self) -> str:
        return f"EvidenceLog({self.store!r}, stack={self.stack!r})"

    # -- writing -------------------------------------------------------------------------------------------

    def append(
        self,
        kind: EvidenceKind | str,
        *,
        model: str,
        actor: str,
        reason: str,
        model_version: str | int | None = None,
        package_arn: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> EvidenceEntry:
        """Record one event and return the sealed entry. Raises PHIError, pydantic's ValidationError for bad
        fields, DamagedLogError, EvidenceConflictError after bounded retries, EvidenceUnavailable."""
        if self.stack is None:
            raise EvidenceError("this log was opened without a stack; fix: pass stack= to write evidence")
        details = dict(details or {})
        check_no_phi(details, reason)  # a clear error before anything else is attempted
        for attempt in range(self._max_attempts):
            head = self._current_head()
            entry = EvidenceEntry.seal(
                seq=0 if head is None else head.seq + 1,
                kind=EvidenceKind(kind),
                stack=self.stack,
                model=model,
                model_version=model_version,
                package_arn=package_arn,
                actor=actor,
                reason=reason,
                at=self._clock(),
                details=details,
                prev_hash=GENESIS_HASH if head is None else head.hash,
            )
            if self.store.create(entry.seq, entry.to_bytes()):
                self._known_head = _Head(entry.seq, entry.hash)
                return entry
            # Another writer took this seq; back off with jitter so racing writers spread out, then re-read.
            self._sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)))
        raise EvidenceConflictError(
            f"{self.store!r}: the next seq was taken {self._max_attempts} times in a row by other writers; "
            "nothing was recorded - retry the append"
        )

    def _current_head(self) -> _Head | None:
        known = self._known_head
        newer = self.store.seqs(after=-1 if known is None else known.seq)
        if not newer:
            return known
        top = newer[-1]
        try:
            entry = EvidenceEntry.from_bytes(self.store.read(top))
        except EntryFormatError as exc:
            raise DamagedLogError(self._damaged(top, str(exc))) from None
        if entry.compute_hash() != entry.hash or entry.seq != top:
            raise DamagedLogError(self._damaged(top, "its hash or seq does not match its content"))
        self._known_head = _Head(entry.seq, entry.hash)
        return self._known_head

    def _damaged(self, seq: int, why: str) -> str:
        return (
            f"{self.store!r}: head entry seq {seq} does not verify ({why}); refusing to link new evidence to it. "
            "Fix: run `clinops evidence verify` and have the evidence owner investigate"
        )

    # -- reading -------------------------------------------------------------------------------------------

    def head(self) -> Anchor | None:
        """The current head (seq and hash) to record elsewhere as an anchor; None for an empty log."""
        head = self._current_head()
        return None if head is None else Anchor(seq=head.seq, hash=head.hash)

    def _chain(self, anchor: Anchor | None = None) -> tuple[int, ChainCheck]:
        stored = [StoredEntry(seq, self.store.read(seq)) for seq in self.store.seqs()]
        return len(stored), check_chain(stored, stack=self.stack, expected_head=anchor)

    def check(self, expected_head: Anchor | str | None = None) -> tuple[VerifyReport, ChainCheck]:
        """Read every entry once: the report and the entries that verify on their own. Raises
        EvidenceUnavailable when the log's location does not exist or cannot be read."""
        anchor = Anchor.parse(expected_head) if isinstance(expected_head, str) else expected_head
        inspection = self.store.inspect()
        count, chain = self._chain(anchor)
        problems = sorted(
            [*chain.problems, *inspection.problems], key=lambda p: (-1 if p.seq is None else p.seq, p.kind)
        )
        report = VerifyReport(
            location=inspection.location,
            entries=count,
            head=chain.head,
            expected_head=anchor,
            problems=problems,
            warnings=inspection.warnings,
        )
        return report, chain

    def verify(self, expected_head: Anchor | str | None = None) -> VerifyReport:
        """Recompute every hash and link. `expected_head` (an Anchor or `SEQ:HASH`) also catches truncation."""
        return self.check(expected_head)[0]

    def entries(self) -> list[EvidenceEntry]:
        """Every entry that verifies on its own and sits at its own seq, in seq order."""
        return [entry for _, entry in sorted(self._chain()[1].trusted.items())]

    def history(self, model: str, version: str | int | None = None) -> list[EvidenceEntry]:
        """A model's entries (one version's, if given) in seq order. Run `verify` to trust the whole chain."""
        return select_history(self.entries(), model, version)


def select_history(entries: list[EvidenceEntry], model: str, version: str | int | None = None) -> list[EvidenceEntry]:
    wanted = None if version is None else str(version)
    return [e for e in entries if e.model == model and (wanted is None or e.model_version == wanted)]
