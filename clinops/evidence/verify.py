"""Chain verification over stored bytes: pure, so every tampering case is testable without a backend.

What the log alone proves: every entry's hash matches its fields, its MAC verifies under the log's key (so
it was written by a holder of that key, not merely by someone with write access), the bytes are the
canonical encoding, each entry sits at its own seq, seqs run 0..n-1, and each `prev_hash` is the previous
entry's hash. So an altered, removed (below the head), duplicated, reordered, inserted or forged entry is
found and named by seq.

What it cannot prove: that entries were not removed from the *end*. A truncated log is a shorter valid
log. The head published outside the log on every append (`clinops.evidence.anchor`) reveals that; `EvidenceLog`
reads it and passes it here as `expected_head`, beside any anchor a person recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from clinops.evidence.entry import GENESIS_HASH, Anchor, EvidenceEntry
from clinops.evidence.errors import EntryFormatError
from clinops.evidence.mac import MacKey
from clinops.evidence.report import Problem, ProblemKind


@dataclass(frozen=True)
class StoredEntry:
    """Bytes as found under one seq's name or key."""

    seq: int
    raw: bytes


@dataclass(frozen=True)
class ChainCheck:
    problems: list[Problem]
    trusted: dict[int, EvidenceEntry]  # entries that verify on their own and sit at their own seq
    head: Anchor | None  # the last stored entry, when it is trusted
    stack: str | None = None  # the stack the log was judged as (given, or most entries')


def _parse(stored: Sequence[StoredEntry], problems: list[Problem], key: MacKey | None) -> dict[int, EvidenceEntry]:
    """Entries whose own hash verifies; every other stored object becomes a problem."""
    sound: dict[int, EvidenceEntry] = {}
    for item in stored:
        try:
            entry = EvidenceEntry.from_bytes(item.raw)
        except EntryFormatError as exc:
            problems.append(Problem(seq=item.seq, kind=ProblemKind.UNREADABLE, message=str(exc)))
            continue
        if entry.compute_hash() != entry.hash:
            problems.append(
                Problem(
                    seq=item.seq,
                    kind=ProblemKind.ALTERED,
                    message=f"stored hash {entry.hash[:12]}… is not the hash of its fields "
                    f"({entry.compute_hash()[:12]}…): a field or the hash was changed",
                )
            )
            continue
        if key is not None and not entry.mac_valid(key):
            problems.append(
                Problem(
                    seq=item.seq,
                    kind=ProblemKind.BAD_MAC,
                    message=f"its MAC does not verify under the log's key ({key!r}): written "
                    "by someone without the key (forged), or sealed with another key",
                )
            )
            continue
        if entry.to_bytes() != item.raw:
            problems.append(
                Problem(
                    seq=item.seq,
                    kind=ProblemKind.NON_CANONICAL,
                    message="bytes are not the canonical encoding of the entry: the file was edited",
                )
            )
        sound[item.seq] = entry
    return sound


def _expected_stack(sound: dict[int, EvidenceEntry], stack: str | None) -> str | None:
    if stack:
        return stack
    most_common = Counter(e.stack for e in sound.values()).most_common(1)
    return most_common[0][0] if most_common else None


def _place(sound: dict[int, EvidenceEntry], stack: str | None, problems: list[Problem]) -> dict[int, EvidenceEntry]:
    """Entries that are where they claim to be, unrepeated, and of this log's stack."""
    expected_stack = _expected_stack(sound, stack)
    holders: dict[str, list[int]] = defaultdict(list)
    for seq, entry in sorted(sound.items()):
        holders[entry.hash].append(seq)
    trusted: dict[int, EvidenceEntry] = {}
    for seq, entry in sorted(sound.items()):
        # Of several copies, the one at its own seq is the original (else the first): the rest are copies.
        original = entry.seq if entry.seq in holders[entry.hash] else holders[entry.hash][0]
        if seq != original:
            message = f"a copy of the entry stored at seq {original} (which claims seq {entry.seq})"
            problems.append(Problem(seq=seq, kind=ProblemKind.DUPLICATE, message=message))
        elif entry.seq != seq:
            message = f"stored at seq {seq} but the entry is seq {entry.seq}: reordered, renamed or copied"
            problems.append(Problem(seq=seq, kind=ProblemKind.MISPLACED, message=message))
        elif entry.stack != expected_stack:
            message = f"entry of stack '{entry.stack}' in the log of stack '{expected_stack}'"
            problems.append(Problem(seq=seq, kind=ProblemKind.FOREIGN, message=message))
        else:
            trusted[seq] = entry
    return trusted


def _links(stored_seqs: list[int], trusted: dict[int, EvidenceEntry], problems: list[Problem]) -> None:
    present = set(stored_seqs)
    for missing in sorted(set(range(max(present, default=-1) + 1)) - present):
        problems.append(Problem(seq=missing, kind=ProblemKind.MISSING, message="no entry: removed"))
    for seq, entry in sorted(trusted.items()):
        if seq == 0:
            if entry.prev_hash != GENESIS_HASH:
                message = f"prev_hash {entry.prev_hash[:12]}… is not the genesis hash (64 zeros): forged first entry"
                problems.append(Problem(seq=0, kind=ProblemKind.BROKEN_LINK, message=message))
            continue
        if seq - 1 not in trusted:
            continue  # the predecessor is missing or damaged and already reported; nothing to compare with
        expected = trusted[seq - 1].hash
        if entry.prev_hash != expected:
            message = (
                f"prev_hash {entry.prev_hash[:12]}… is not the hash of seq {seq - 1} ({expected[:12]}…): "
                f"seq {seq} was forged or inserted, or seq {seq - 1} was rewritten"
            )
            problems.append(Problem(seq=seq, kind=ProblemKind.BROKEN_LINK, message=message))


def _anchor(anchor: Anchor, stored_seqs: list[int], trusted: dict[int, EvidenceEntry], problems: list[Problem]) -> None:
    last = max(stored_seqs, default=-1)
    if anchor.seq is None:
        if not any(entry.hash == anchor.hash for entry in trusted.values()):
            message = f"no entry has the anchored hash {anchor.hash[:12]}…: the log was truncated or rewritten"
            problems.append(Problem(seq=None, kind=ProblemKind.ANCHOR_MISMATCH, message=message))
        return
    if anchor.seq > last:
        message = (
            f"the log ends at seq {last} but the anchor records seq {anchor.seq}: "
            f"seq {last + 1}..{anchor.seq} were removed from the tail"
        )
        problems.append(Problem(seq=last + 1, kind=ProblemKind.TRUNCATED, message=message))
    elif anchor.seq not in trusted:
        message = "the anchored entry is missing or does not verify"
        problems.append(Problem(seq=anchor.seq, kind=ProblemKind.ANCHOR_MISMATCH, message=message))
    elif trusted[anchor.seq].hash != anchor.hash:
        message = (
            f"hash {trusted[anchor.seq].hash[:12]}… differs from the anchored {anchor.hash[:12]}…: "
            "the log was rewritten up to here"
        )
        problems.append(Problem(seq=anchor.seq, kind=ProblemKind.ANCHOR_MISMATCH, message=message))


def check_chain(
    stored: Sequence[StoredEntry],
    *,
    stack: str | None = None,
    expected_head: Anchor | None = None,
    key: MacKey | None = None,
    anchors: Sequence[Anchor] = (),
) -> ChainCheck:
    """Every problem in `stored` (in any order), each tied to the seq it concerns, sorted by seq. With `key`,
    every entry's MAC is checked too (`EvidenceLog` always passes its key); `anchors` are further heads known
    from outside the log (the published head), checked like `expected_head`."""
    ordered = sorted(stored, key=lambda item: item.seq)
    problems: list[Problem] = []
    sound = _parse(ordered, problems, key)
    trusted = _place(sound, stack, problems)
    seqs = [item.seq for item in ordered]
    _links(seqs, trusted, problems)
    for anchor in [*anchors, *([expected_head] if expected_head is not None else [])]:
        _anchor(anchor, seqs, trusted, problems)
    problems.sort(key=lambda p: (-1 if p.seq is None else p.seq, p.kind))
    last = seqs[-1] if seqs else None
    head = trusted[last].anchor if last is not None and last in trusted else None
    return ChainCheck(problems=problems, trusted=trusted, head=head, stack=_expected_stack(sound, stack))
