"""Every way of tampering with a local log is detected and reported with the seq it concerns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clinops.evidence import DamagedLogError, EvidenceEntry, EvidenceLog, MacKey, ProblemKind
from tests.clinops.evidence.helpers import (
    CI,
    KEY,
    MODEL,
    STORY,
    entry_path,
    filled_log,
    overwrite,
    problems_of,
    read_entry,
    remove,
    reseal,
    stepping_clock,
)

HEAD = len(STORY) - 1  # seq 5


@pytest.fixture
def log(tmp_path: Path) -> EvidenceLog:
    filled = filled_log(tmp_path)
    assert filled.verify().ok
    return filled


def root(log: EvidenceLog) -> Path:
    return log.store.root  # type: ignore[attr-defined]


def forge(log: EvidenceLog, seq: int, prev_hash: str, stack: str = "prod", key: MacKey | None = None) -> EvidenceEntry:
    """An entry with a valid hash and MAC of its own. By default sealed with the log's own key - a writer that
    misbehaves, so the chain rules below are tested on their own; `key=KEY` is a reader with another key."""
    return EvidenceEntry.seal(
        key or log.key,
        seq=seq,
        kind="approval",
        stack=stack,
        model=MODEL,
        actor=CI,
        reason="forged approval",
        at=stepping_clock()(),
        details={},
        prev_hash=prev_hash,
    )


def rewrite_fields(log: EvidenceLog, seq: int, *, rehash: bool, key: MacKey | None = None, **changes: object) -> None:
    """Change fields; `rehash` recomputes the hash (anyone can), `key` also re-MACs (only a key holder can)."""
    document = json.loads(entry_path(root(log), seq).read_bytes())
    document.update(changes)
    entry = EvidenceEntry.model_validate(document)
    if rehash:
        entry = reseal(entry, key)
    overwrite(entry_path(root(log), seq), entry.to_bytes())


def test_an_untouched_log_verifies_with_its_head(log: EvidenceLog) -> None:
    report = log.verify(expected_head=log.head())
    assert report.ok and report.problems == [] and report.entries == 6
    assert report.head == read_entry(root(log), HEAD).anchor


def test_altered_field(log: EvidenceLog) -> None:
    rewrite_fields(log, 2, rehash=False, reason="blue/green release of v4")
    assert problems_of(log) == [("altered", 2)]


def test_altered_hash(log: EvidenceLog) -> None:
    rewrite_fields(log, 2, rehash=False, hash="f" * 64)
    assert problems_of(log) == [("altered", 2)]


def test_altered_field_with_recomputed_hash_but_no_key_has_a_bad_mac(log: EvidenceLog) -> None:
    rewrite_fields(log, 2, rehash=True, actor="arn:aws:iam::123456789012:role/someone-else")
    assert problems_of(log) == [("bad-mac", 2)]


def test_altered_field_resealed_with_the_key_breaks_the_next_link(log: EvidenceLog) -> None:
    rewrite_fields(log, 2, rehash=True, key=log.key, actor="arn:aws:iam::123456789012:role/someone-else")
    assert problems_of(log) == [("broken-link", 3)]


def test_removed_middle_entry(log: EvidenceLog) -> None:
    remove(entry_path(root(log), 2))
    assert problems_of(log) == [("missing", 2)]


def test_removed_first_entry(log: EvidenceLog) -> None:
    remove(entry_path(root(log), 0))
    assert problems_of(log) == [("missing", 0)]


def test_swapped_entries(log: EvidenceLog) -> None:
    second, third = entry_path(root(log), 2), entry_path(root(log), 3)
    second_bytes, third_bytes = second.read_bytes(), third.read_bytes()
    overwrite(second, third_bytes)
    overwrite(third, second_bytes)
    assert problems_of(log) == [("misplaced", 2), ("misplaced", 3)]


@pytest.mark.parametrize("with_key", [True, False], ids=["writer-key", "no-key"])
def test_swapped_entries_with_rewritten_seqs_break_links(log: EvidenceLog, with_key: bool) -> None:
    second, third = read_entry(root(log), 2), read_entry(root(log), 3)
    for seq, entry in ((2, third), (3, second)):
        moved = reseal(entry.model_copy(update={"seq": seq}), log.key if with_key else None)
        overwrite(entry_path(root(log), seq), moved.to_bytes())
    if with_key:
        assert problems_of(log) == [("broken-link", 2), ("broken-link", 3), ("broken-link", 4)]
    else:
        assert problems_of(log) == [("bad-mac", 2), ("bad-mac", 3)]


def test_duplicated_entry_appended(log: EvidenceLog) -> None:
    shutil.copyfile(entry_path(root(log), 2), entry_path(root(log), HEAD + 1))
    assert problems_of(log) == [("duplicate", HEAD + 1)]


def test_duplicated_entry_over_another(log: EvidenceLog) -> None:
    overwrite(entry_path(root(log), 4), entry_path(root(log), 2).read_bytes())
    assert problems_of(log) == [("duplicate", 4)]


def test_forged_entry_appended_with_a_valid_hash_but_a_wrong_link(log: EvidenceLog) -> None:
    wrong_link = read_entry(root(log), HEAD - 1).hash
    overwrite(entry_path(root(log), HEAD + 1), forge(log, HEAD + 1, wrong_link).to_bytes())
    assert problems_of(log) == [("broken-link", HEAD + 1)]


def test_forged_entry_restarting_from_genesis(log: EvidenceLog) -> None:
    overwrite(entry_path(root(log), HEAD + 1), forge(log, HEAD + 1, "0" * 64).to_bytes())
    assert problems_of(log) == [("broken-link", HEAD + 1)]


def test_forged_first_entry(log: EvidenceLog) -> None:
    overwrite(entry_path(root(log), 0), forge(log, 0, "1" * 64).to_bytes())
    # seq 0 no longer starts at genesis; seq 1 no longer links to it.
    assert problems_of(log) == [("broken-link", 0), ("broken-link", 1)]


def test_inserted_entry_shifts_the_ones_after_it(log: EvidenceLog) -> None:
    for seq in range(HEAD, 2, -1):  # make room at seq 3 by renaming 3..5 to 4..6
        overwrite(entry_path(root(log), seq + 1), entry_path(root(log), seq).read_bytes())
    overwrite(entry_path(root(log), 3), forge(log, 3, read_entry(root(log), 2).hash).to_bytes())
    # The published head (seq 5) now names an entry that sits elsewhere: the anchor no longer matches either.
    assert problems_of(log) == [("misplaced", 4), ("anchor-mismatch", 5), ("misplaced", 5), ("misplaced", 6)]


def test_entry_of_another_stack(log: EvidenceLog) -> None:
    foreign = forge(log, HEAD + 1, read_entry(root(log), HEAD).hash, stack="staging")
    overwrite(entry_path(root(log), HEAD + 1), foreign.to_bytes())
    assert problems_of(log) == [("foreign-stack", HEAD + 1)]


@pytest.mark.parametrize("garbage", [b"", b"not json", b"\xff\xfe\x00", b'{"seq": 2}', b"[]"])
def test_unparseable_entry_is_tampering(log: EvidenceLog, garbage: bytes) -> None:
    overwrite(entry_path(root(log), 2), garbage)
    assert problems_of(log) == [("unreadable", 2)]


def test_reformatted_entry_is_not_canonical(log: EvidenceLog) -> None:
    path = entry_path(root(log), 2)
    overwrite(path, json.dumps(json.loads(path.read_bytes()), indent=2).encode())
    assert problems_of(log) == [("non-canonical", 2)]


def test_truncated_tail_is_caught_by_the_published_head_without_a_manual_anchor(log: EvidenceLog) -> None:
    anchor = log.head()
    assert anchor is not None
    remove(entry_path(root(log), HEAD))
    remove(entry_path(root(log), HEAD - 1))
    report = EvidenceLog.local(root(log), "prod").verify()  # a fresh reader: nothing remembered in memory
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, HEAD - 1)]
    assert f"seq {HEAD - 1}..{HEAD} were removed" in report.problems[0].message
    assert report.published_head == anchor
    # A manual anchor is still checked as well.
    assert ("anchor-mismatch", None) in problems_of(log, expected_head=anchor.hash)


def test_truncating_the_whole_log_is_caught(log: EvidenceLog) -> None:
    for seq in range(HEAD + 1):
        remove(entry_path(root(log), seq))
    assert problems_of(EvidenceLog.local(root(log), "prod")) == [("truncated", 0)]


def test_rewritten_last_entry_is_caught(log: EvidenceLog) -> None:
    """The last entry replaced by a sealed one (a writer's key) that links correctly: only the head tells."""
    previous = read_entry(root(log), HEAD - 1).hash
    overwrite(entry_path(root(log), HEAD), forge(log, HEAD, previous).to_bytes())
    assert problems_of(log) == [("anchor-mismatch", HEAD)]


def test_rewritten_tail_with_recomputed_hashes_is_caught(log: EvidenceLog) -> None:
    previous = read_entry(root(log), 2).hash
    for seq in range(3, HEAD + 1):  # a careful forger rewrites every entry from seq 3 on
        entry = read_entry(root(log), seq).model_copy(update={"reason": "rewritten", "prev_hash": previous})
        entry = reseal(entry, None)
        overwrite(entry_path(root(log), seq), entry.to_bytes())
        previous = entry.hash
    # Without the key every rewritten entry fails its MAC, and the published head no longer matches.
    assert problems_of(log) == [("bad-mac", 3), ("bad-mac", 4), ("anchor-mismatch", HEAD), ("bad-mac", HEAD)]


def test_forged_append_by_a_reader_without_the_key(log: EvidenceLog) -> None:
    """A reader who can write files but not use the key appends a well-formed, correctly linked entry."""
    head = read_entry(root(log), HEAD)
    forged = forge(log, HEAD + 1, head.hash, key=KEY)
    overwrite(entry_path(root(log), HEAD + 1), forged.to_bytes())
    assert problems_of(log) == [("bad-mac", HEAD + 1)]
    with pytest.raises(DamagedLogError, match="MAC"):  # and no writer links new evidence to it
        EvidenceLog.local(root(log), "prod").append("drill", model=MODEL, actor=CI, reason="rollback drill")


def test_forged_published_head_is_reported(log: EvidenceLog) -> None:
    head_file = root(log).parent / f"{root(log).name}.head"
    seq = head_file.read_text().split(":")[0]
    head_file.write_text(f"{int(seq) - 2}:{read_entry(root(log), int(seq) - 2).hash}:{'A' * 43}=\n")
    assert problems_of(log) == [("head-forged", HEAD - 2)]


def test_removed_published_head_is_reported(log: EvidenceLog) -> None:
    (root(log).parent / f"{root(log).name}.head").unlink()
    assert problems_of(log) == [("head-missing", None)]


def test_anchor_behind_the_head_accepts_later_appends(log: EvidenceLog) -> None:
    anchor = log.head()
    log.append("drill", model=MODEL, actor=CI, reason="rollback drill")
    assert log.verify(expected_head=anchor).ok
    assert log.verify(expected_head=str(anchor)).ok


def test_every_problem_is_reported_at_once(log: EvidenceLog) -> None:
    remove(entry_path(root(log), 1))
    rewrite_fields(log, 3, rehash=False, reason="edited")
    shutil.copyfile(entry_path(root(log), 4), entry_path(root(log), HEAD + 1))
    assert problems_of(log) == [("missing", 1), ("altered", 3), ("duplicate", HEAD + 1)]


def test_stray_files_are_warnings_not_problems(log: EvidenceLog) -> None:
    (root(log) / "notes.txt").write_text("hello")
    shutil.copyfile(entry_path(root(log), 2), root(log) / "000000000002.json.bak")
    report = log.verify()
    assert report.ok
    assert [w.split(": ")[0].rsplit("/", 1)[-1] for w in report.warnings] == ["000000000002.json.bak", "notes.txt"]


def test_append_refuses_to_extend_a_damaged_head(log: EvidenceLog) -> None:
    rewrite_fields(log, HEAD, rehash=False, reason="edited")
    fresh = EvidenceLog.local(root(log), "prod")
    with pytest.raises(DamagedLogError, match=f"head entry seq {HEAD} does not verify"):
        fresh.append("drill", model=MODEL, actor=CI, reason="rollback drill")
    assert not entry_path(root(log), HEAD + 1).exists()


def test_history_is_in_order_and_filtered_by_model_and_version(log: EvidenceLog) -> None:
    assert [e.kind for e in log.history(MODEL)] == ["gate", "approval", "release", "verification", "rollback"]
    assert [e.seq for e in log.history(MODEL, version="3")] == [1, 2, 4, 5]
    assert [e.seq for e in log.history(MODEL, version=3)] == [1, 2, 4, 5]
    assert [e.seq for e in log.history("sepsis-warning")] == [3]
    assert log.history(MODEL, version="9") == []


def test_history_leaves_out_entries_that_do_not_verify(log: EvidenceLog) -> None:
    rewrite_fields(log, 2, rehash=False, reason="edited")
    assert [e.seq for e in log.history(MODEL, version="3")] == [1, 4, 5]
