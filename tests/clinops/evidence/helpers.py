"""Shared builders for the evidence tests: a deterministic clock, a filled log, file tampering."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clinops.evidence import (
    EvidenceEntry,
    EvidenceLog,
    FileHeadStore,
    LocalMacKey,
    LocalStore,
    MacKey,
    local_head_path,
    local_key_path,
)
from clinops.evidence.mac import entry_message

DEPLOYER = "arn:aws:sts::123456789012:assumed-role/clinops-deployer/github-actions"
APPROVER = "arn:aws:iam::123456789012:role/clinical-governance"
CI = "github-actions:hospital/clinops:refs/heads/main"
MODEL = "readmission-risk"
OTHER_MODEL = "sepsis-warning"
# The writers' key for tests that seal entries by hand (the dev-only local key: same code path as KMS).
# Its path is kept in the environment so spawned test processes load the same key.
_KEY_PATH = os.environ.setdefault(
    "CLINOPS_TEST_EVIDENCE_KEY", str(Path(tempfile.mkdtemp(prefix="clinops-evidence-key-")) / "test.mac-key")
)
KEY = LocalMacKey(_KEY_PATH, create=True)
KEY.generate(b"")  # created now, so verifying with it never depends on test order


def reseal(entry: EvidenceEntry, key: MacKey | None) -> EvidenceEntry:
    """Recompute the hash (anyone can) and, given a key, the MAC (only a key holder can)."""
    digest = entry.compute_hash()
    mac = base64.b64encode(key.generate(entry_message(digest))).decode() if key is not None else entry.mac
    return entry.model_copy(update={"hash": digest, "mac": mac})


def log_over(store: LocalStore, **options: Any) -> EvidenceLog:
    """A log over a given local store, with the same key file and published head as `EvidenceLog.local`."""
    key = LocalMacKey(local_key_path(store.root), create=True)
    return EvidenceLog(store, "prod", key=key, head_store=FileHeadStore(local_head_path(store.root)), **options)


def package_arn(version: int, model: str = MODEL) -> str:
    return f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{model}/{version}"


def stepping_clock(start: datetime = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)) -> Callable[[], datetime]:
    """Each call is one second after the previous: timestamps are predictable and strictly increasing."""
    ticks: Iterator[int] = iter(range(10**9))
    return lambda: start + timedelta(seconds=next(ticks))


# A plausible release story for one model version, then another model's events.
STORY: list[dict[str, Any]] = [
    {
        "kind": "gate",
        "model": MODEL,
        "actor": CI,
        "reason": "policy gate on the prod plan",
        "details": {"passed": True, "plan_sha256": "a" * 64},
    },
    {
        "kind": "approval",
        "model": MODEL,
        "package_arn": package_arn(3),
        "actor": APPROVER,
        "reason": "clinical governance board approved v3",
        "details": {"ticket": "CGB-112"},
    },
    {
        "kind": "release",
        "model": MODEL,
        "package_arn": package_arn(3),
        "actor": DEPLOYER,
        "reason": "blue/green release of v3",
        "details": {"canary_percent": 10},
    },
    {
        "kind": "drift",
        "model": OTHER_MODEL,
        "model_version": 7,
        "actor": CI,
        "reason": "PSI above threshold",
        "details": {"features": [{"feature": "lactate", "psi": 0.31}]},
    },
    {
        "kind": "verification",
        "model": MODEL,
        "package_arn": package_arn(3),
        "actor": DEPLOYER,
        "reason": "post-release verification",
        "details": {"p99_ms": 41.5, "errors": 0},
    },
    {
        "kind": "rollback",
        "model": MODEL,
        "package_arn": package_arn(3),
        "actor": DEPLOYER,
        "reason": "alarm fired: rolled back to v2",
        "details": {"to_version": "2", "seconds_to_rollback": 212},
    },
]


def filled_log(root: Path, stack: str = "prod", events: list[dict[str, Any]] | None = None) -> EvidenceLog:
    log = EvidenceLog.local(root, stack, clock=stepping_clock())
    for event in events if events is not None else STORY:
        log.append(**event)
    return log


def entry_path(root: Path, seq: int) -> Path:
    return root / f"{seq:012d}.json"


def read_entry(root: Path, seq: int) -> EvidenceEntry:
    return EvidenceEntry.from_bytes(entry_path(root, seq).read_bytes())


def overwrite(path: Path, data: bytes) -> None:
    """What an attacker with file access does: entries are read-only, so chmod first."""
    if path.exists():
        os.chmod(path, 0o644)
    path.write_bytes(data)


def remove(path: Path) -> None:
    os.chmod(path, 0o644)
    path.unlink()


def problems_of(log: EvidenceLog, **verify_args: Any) -> list[tuple[str, int | None]]:
    return [(str(p.kind), p.seq) for p in log.verify(**verify_args).problems]


class CountingStore(LocalStore):
    """A local store that counts lost races, so a concurrency test can show writers really collided."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self.conflicts = 0

    def create(self, seq: int, data: bytes) -> bool:
        created = super().create(seq, data)
        self.conflicts += not created
        return created


def append_in_process(root: str, writer: int, count: int, start: Any, conflicts: Any) -> None:
    """Top-level so multiprocessing can run it in a spawned interpreter; reports its lost races."""
    store = CountingStore(root)
    log = log_over(store)
    start.wait()  # a barrier: both processes begin appending together
    for n in range(count):
        log.append("drill", model=MODEL, actor=CI, reason=f"process {writer} drill {n}", details={"writer": writer})
    conflicts.put(store.conflicts)
