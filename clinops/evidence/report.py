"""What `verify` found: problems (tampering, each with its seq), warnings, and where the log lives."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from clinops.evidence.entry import Anchor


class ProblemKind(StrEnum):
    UNREADABLE = "unreadable"  # an entry exists but does not parse (bad UTF-8/JSON, schema violation)
    ALTERED = "altered"  # the stored hash is not the hash of the entry's fields
    NON_CANONICAL = "non-canonical"  # fields hash correctly but the bytes are not the canonical encoding
    DUPLICATE = "duplicate"  # an entry repeats an earlier one
    MISPLACED = "misplaced"  # an entry's seq is not the seq it is stored under (reordered, renamed, copied)
    MISSING = "missing"  # a seq below the head has no entry (removed)
    BROKEN_LINK = "broken-link"  # prev_hash is not the previous entry's hash (forged, inserted or rewritten)
    FOREIGN = "foreign-stack"  # an entry of another stack's log
    TRUNCATED = "truncated"  # the anchor names a seq beyond the end of the log
    ANCHOR_MISMATCH = "anchor-mismatch"  # the anchored entry is absent or differs from the anchor
    OVERWRITTEN = "overwritten"  # S3: the key holds more than one version
    DELETED = "deleted"  # S3: a delete marker hides a locked version
    BAD_MAC = "bad-mac"  # the entry's MAC does not verify under the log's key: written without the key (forged)
    HEAD_MISSING = "head-missing"  # entries exist but no head was published outside the log
    HEAD_FORGED = "head-forged"  # the published head's MAC does not verify: written without the key
    UNVERIFIABLE = "unverifiable"  # a check could not run (no permission to list versions, read the lock): not ok


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int | None
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        where = "log" if self.seq is None else f"seq {self.seq}"
        return f"{where}: {self.kind}: {self.message}"


class VerifyReport(BaseModel):
    """`ok` only when no problem was found. A check that could not run (versions or lock configuration
    unreadable) is a problem (`unverifiable`), not a warning: an unchecked log is not an intact one."""

    model_config = ConfigDict(frozen=True)

    location: dict[str, Any]
    entries: int
    head: Anchor | None
    expected_head: Anchor | None
    published_head: Anchor | None = None  # the head published outside the log on the last append
    problems: list[Problem]
    warnings: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_seqs(self, kind: ProblemKind | None = None) -> list[int | None]:
        return [p.seq for p in self.problems if kind is None or p.kind == kind]
