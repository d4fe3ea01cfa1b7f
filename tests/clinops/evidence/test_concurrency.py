"""Concurrent writers never fork the chain or lose an entry; conflicts are retried a bounded number of times."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from clinops.evidence import EvidenceConflictError, EvidenceLog, LocalStore
from tests.clinops.evidence.helpers import CI, MODEL, CountingStore, append_in_process, entry_path, log_over, read_entry

THREADS, PER_THREAD = 8, 15


def run_threads(make_log: Callable[[], EvidenceLog]) -> list[str]:
    barrier = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def writer(index: int) -> None:
        log = make_log()
        barrier.wait()  # start together so they really race for the same seqs
        try:
            for n in range(PER_THREAD):
                log.append("drill", model=MODEL, actor=CI, reason=f"thread {index} drill {n}")
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return [f"thread {i} drill {n}" for i in range(THREADS) for n in range(PER_THREAD)]


def assert_contiguous_chain(log: EvidenceLog, expected_reasons: list[str]) -> None:
    report = log.verify()
    assert report.ok, report.problems
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(len(expected_reasons)))
    assert sorted(e.reason for e in entries) == sorted(expected_reasons)  # none lost, none doubled


@pytest.mark.parametrize("shared", [False, True], ids=["log-per-writer", "one-shared-log"])
def test_threads_appending_to_a_local_log_build_one_contiguous_chain(tmp_path: Path, shared: bool) -> None:
    stores: list[CountingStore] = []

    def make_log() -> EvidenceLog:
        if shared and stores:
            return common
        stores.append(CountingStore(tmp_path))
        return log_over(stores[-1])

    common = make_log()
    reasons = run_threads(make_log)
    assert sum(s.conflicts for s in stores) > 0  # the writers did collide, and recovered
    assert_contiguous_chain(common, reasons)


def test_two_processes_appending_build_one_contiguous_chain(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no shared Python state at all
    start, conflicts = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=append_in_process, args=(str(tmp_path), w, 40, start, conflicts)) for w in range(2)
    ]
    for process in processes:
        process.start()
    lost_races = [conflicts.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert_contiguous_chain(
        EvidenceLog.local(tmp_path, "prod"), [f"process {w} drill {n}" for w in range(2) for n in range(40)]
    )
    assert len(lost_races) == 2  # each process finished its appends (lost races are recovered by retrying)


class RivalWritesFirst(LocalStore):
    """Before each of our first `rivals` creates, another writer appends: our seq is always just taken."""

    def __init__(self, root: Path, rivals: int) -> None:
        super().__init__(root)
        self.rival = EvidenceLog.local(root, "prod")
        self.rivals = rivals
        self.attempts: list[int] = []

    def create(self, seq: int, data: bytes) -> bool:
        self.attempts.append(seq)
        if len(self.attempts) <= self.rivals:
            self.rival.append("gate", model=MODEL, actor=CI, reason=f"rival {len(self.attempts)}")
        return super().create(seq, data)


def test_a_lost_race_rereads_the_head_and_links_to_the_winner(tmp_path: Path) -> None:
    EvidenceLog.local(tmp_path, "prod").append("approval", model=MODEL, actor=CI, reason="first")
    store = RivalWritesFirst(tmp_path, rivals=3)
    naps: list[float] = []
    log = log_over(store, sleep=naps.append)
    entry = log.append("release", model=MODEL, actor=CI, reason="ours")
    assert store.attempts == [1, 2, 3, 4]
    assert entry.seq == 4 and entry.prev_hash == read_entry(tmp_path, 3).hash
    assert len(naps) == 3 and all(0 <= nap <= 0.2 for nap in naps)
    assert log.verify().ok


def test_retries_are_bounded_and_nothing_is_written_when_they_run_out(tmp_path: Path) -> None:
    store = RivalWritesFirst(tmp_path, rivals=10**6)
    naps: list[float] = []
    log = log_over(store, max_attempts=5, sleep=naps.append)
    with pytest.raises(EvidenceConflictError, match="taken 5 times in a row"):
        log.append("release", model=MODEL, actor=CI, reason="ours")
    assert len(store.attempts) == 5 and len(naps) == 5
    assert all(e.reason.startswith("rival") for e in log.entries())
    assert log.verify().ok


def test_an_existing_entry_is_never_overwritten(tmp_path: Path) -> None:
    log = EvidenceLog.local(tmp_path, "prod")
    log.append("approval", model=MODEL, actor=CI, reason="first")
    before = entry_path(tmp_path, 0).read_bytes()
    assert LocalStore(tmp_path).create(0, b"replacement") is False
    assert entry_path(tmp_path, 0).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000000000.json"]  # no temporary file left
