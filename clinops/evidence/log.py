"""The evidence log: append-only and hash-chained over a store (local directory or S3).

Concurrency: `append` reads the head, links a new entry to it and asks the store to *create* the next seq.
The store never overwrites (link(2) locally, `IfNoneMatch='*'` on S3), so of two racing writers exactly one
wins the seq; the other re-reads the head and retries, a bounded number of times. No fork, no lost entry.

Keys and the published head: every entry is sealed with a MAC under the log's key (`clinops.evidence.mac`), and
after each append the new head goes to a second store (`clinops.evidence.anchor`), so `verify` detects a
forged append (no key), a truncated tail and a rewritten last entry without a manually kept anchor.

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

from clinops.evidence.anchor import FileHeadStore, HeadStore, PublishedHead, SsmHeadStore, head_parameter_name
from clinops.evidence.entry import GENESIS_HASH, Anchor, EvidenceEntry, EvidenceKind, utc_now
from clinops.evidence.errors import (
    DamagedLogError,
    EntryFormatError,
    EvidenceConflictError,
    EvidenceError,
    EvidenceUnavailable,
)
from clinops.evidence.local import LocalStore
from clinops.evidence.mac import KmsMacKey, LocalMacKey, MacKey
from clinops.evidence.phi import check_no_phi
from clinops.evidence.report import Problem, ProblemKind, VerifyReport
from clinops.evidence.store import EvidenceStore
from clinops.evidence.verify import ChainCheck, StoredEntry, check_chain

DEFAULT_MAX_ATTEMPTS = 16
_BACKOFF_BASE_SECONDS = 0.002
_BACKOFF_CAP_SECONDS = 0.2


class _Head(NamedTuple):
    seq: int
    hash: str


class HeadNotPublished(EvidenceUnavailable):
    """The entry IS recorded (`.entry`), but its head could not be published outside the log. Do not append it
    again; the next append publishes the newer head, and `verify` reports the lag until then."""

    def __init__(self, message: str, entry: EvidenceEntry) -> None:
        super().__init__(message)
        self.entry = entry


def local_key_path(root: Path | str) -> Path:
    """Dev-only MAC key of a local log: beside the log directory, never inside it (not an entry name)."""
    root = Path(root)
    return root.parent / f"{root.name}.mac-key"


def local_head_path(root: Path | str) -> Path:
    root = Path(root)
    return root.parent / f"{root.name}.head"


class EvidenceLog:
    def __init__(
        self,
        store: EvidenceStore,
        stack: str | None = None,
        *,
        key: MacKey,
        head_store: HeadStore | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.stack = stack
        self.key = key
        self.head_store = head_store
        self._clock = clock
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._known_head: _Head | None = None  # a hint only: entries are immutable, so it can be stale, not wrong

    @classmethod
    def local(
        cls,
        root: Path | str,
        stack: str | None = None,
        *,
        key_file: Path | str | None = None,
        create_key: bool = True,
        **options: Any,
    ) -> EvidenceLog:
        """A log in a directory, sealed with a dev-only key file (created on first use unless `create_key` is
        False) and its head published to `<root>.head`."""
        key = LocalMacKey(key_file or local_key_path(root), create=create_key)
        options.setdefault("head_store", FileHeadStore(local_head_path(root)))
        return cls(LocalStore(root), stack, key=key, **options)

    @classmethod
    def s3(
        cls,
        bucket: str,
        prefix: str,
        stack: str,
        *,
        mac_key_id: str,
        kms_key_id: str | None = None,
        client: Any = None,
        kms_client: Any = None,
        ssm_client: Any = None,
        head_parameter: str | None = None,
        **options: Any,
    ) -> EvidenceLog:
        """A log in the evidence bucket: entries sealed with the KMS HMAC key `mac_key_id`, the head published
        to the stack's SSM parameter (`anchor.head_parameter_name`)."""
        from clinops.evidence.s3 import S3Store

        key = options.pop("key", None) or KmsMacKey(mac_key_id, kms_client)
        if "head_store" not in options:
            options["head_store"] = SsmHeadStore(head_parameter or head_parameter_name(stack), ssm_client)
        store = S3Store(bucket, prefix, stack, kms_key_id=kms_key_id, client=client, key=key)
        return cls(store, stack, key=key, **options)

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
                self.key,
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
                self._publish(entry)
                return entry
            # Another writer took this seq; back off with jitter so racing writers spread out, then re-read.
            self._sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)))
        raise EvidenceConflictError(
            f"{self.store!r}: the next seq was taken {self._max_attempts} times in a row by other writers; "
            "nothing was recorded - retry the append"
        )

    def _publish(self, entry: EvidenceEntry) -> None:
        """Publish this entry as the head, unless a newer valid head is already there (never move it back)."""
        if self.head_store is None or self.stack is None:
            return
        try:
            current = self._published()
            if current is not None and current.anchor.seq is not None and current.anchor.seq >= entry.seq:
                return
            self.head_store.write(PublishedHead.sign(self.key, self.stack, entry.seq, entry.hash).text())
        except EvidenceError as exc:
            raise HeadNotPublished(
                f"{self.store!r}: seq {entry.seq} is recorded, but its head was not published to "
                f"{self.head_store.describe()} ({exc}); do not append it again - the next append publishes the "
                "head; until then verify reports the lag",
                entry,
            ) from exc

    def _published(self) -> PublishedHead | None:
        """The published head if it is there and carries a valid MAC; None otherwise (verify reports why)."""
        if self.head_store is None or self.stack is None:
            return None
        text = self.head_store.read()
        if text is None:
            return None
        try:
            head = PublishedHead.parse(text)
        except ValueError:
            return None
        return head if head.valid(self.key, self.stack) else None

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
        if not entry.mac_valid(self.key):
            raise DamagedLogError(self._damaged(top, "its MAC does not verify under this log's key: forged"))
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

    def _stored(self) -> list[StoredEntry]:
        return [StoredEntry(seq, self.store.read(seq)) for seq in self.store.seqs()]

    def _chain(self, anchor: Anchor | None = None) -> tuple[int, ChainCheck]:
        stored = self._stored()
        return len(stored), check_chain(stored, stack=self.stack, expected_head=anchor, key=self.key)

    def _published_problems(self, entries: int, stack: str | None) -> tuple[Anchor | None, list[Problem]]:
        """The published head to check the log against, or the problem that there is none to trust."""
        if self.head_store is None or stack is None:
            return None, []
        text = self.head_store.read()
        where = self.head_store.describe()
        if text is None:
            if entries == 0:
                return None, []
            message = f"{entries} entries but no head published at {where}: removed, or never written by clinops"
            return None, [Problem(seq=None, kind=ProblemKind.HEAD_MISSING, message=message)]
        try:
            head = PublishedHead.parse(text)
        except ValueError:
            message = f"the head at {where} is not SEQ:HASH:MAC: overwritten by someone outside clinops"
            return None, [Problem(seq=None, kind=ProblemKind.HEAD_FORGED, message=message)]
        if not head.valid(self.key, stack):
            message = f"the head at {where} ({head.anchor}) has no valid MAC: published without the log's key"
            return None, [Problem(seq=head.anchor.seq, kind=ProblemKind.HEAD_FORGED, message=message)]
        return head.anchor, []

    def check(self, expected_head: Anchor | str | None = None) -> tuple[VerifyReport, ChainCheck]:
        """Read every entry once: the report and the entries that verify on their own. Raises
        EvidenceUnavailable when the log's location does not exist or cannot be read."""
        anchor = Anchor.parse(expected_head) if isinstance(expected_head, str) else expected_head
        inspection = self.store.inspect()
        stored = self._stored()
        stack = self.stack
        if stack is None and stored:  # opened without a stack (a local directory): the entries name it
            stack = check_chain(stored, key=self.key).stack
        published, head_problems = self._published_problems(len(stored), stack)
        count = len(stored)
        chain = check_chain(
            stored, stack=self.stack, expected_head=anchor, key=self.key, anchors=(published,) if published else ()
        )
        problems = sorted(
            [*chain.problems, *inspection.problems, *head_problems],
            key=lambda p: (-1 if p.seq is None else p.seq, p.kind),
        )
        report = VerifyReport(
            location=inspection.location,
            entries=count,
            head=chain.head,
            expected_head=anchor,
            published_head=published,
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
