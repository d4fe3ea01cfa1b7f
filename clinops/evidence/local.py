"""Local directory backend: one file per entry, `{seq:012d}.json`, published atomically, never overwritten.

Why not `open(final, O_CREAT | O_EXCL)` and write: a reader (or a crash) could then see half an entry, and a
half-written entry would block its seq forever. Instead the bytes go to a temporary file created with O_EXCL
(`mkstemp`), are fsynced, and are published with `link(2)`, which - like O_EXCL - fails if the name exists.
Readers therefore see a complete entry or none, and two writers can never both own one seq. Needs a
filesystem with hard links (any POSIX local filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from clinops.evidence.errors import EvidenceUnavailable
from clinops.evidence.store import ENTRY_NAME, StoreInspection, entry_name

_TEMP_SUFFIX = ".tmp"


class LocalStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _names(self) -> list[str]:
        if not self.root.exists():
            return []  # a log nobody wrote to yet is empty
        try:
            return os.listdir(self.root)
        except OSError as exc:
            raise EvidenceUnavailable(f"{self.root}: cannot list the evidence directory ({exc.strerror})") from exc

    def seqs(self, after: int = -1) -> list[int]:
        found = (ENTRY_NAME.match(name) for name in self._names())
        return sorted(seq for seq in (int(m.group(1)) for m in found if m) if seq > after)

    def read(self, seq: int) -> bytes:
        path = self.root / entry_name(seq)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise EvidenceUnavailable(f"{path}: cannot read ({exc.strerror})") from exc

    def create(self, seq: int, data: bytes) -> bool:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{entry_name(seq)}.", suffix=_TEMP_SUFFIX, dir=self.root)
        except OSError as exc:
            raise EvidenceUnavailable(f"{self.root}: cannot write evidence ({exc.strerror})") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # durable before it becomes visible
            os.chmod(temp, 0o444)  # read-only: changing evidence takes a deliberate act
            try:
                os.link(temp, self.root / entry_name(seq))
            except FileExistsError:
                return False
            self._sync_directory()
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _sync_directory(self) -> None:
        # The new name is durable only once the directory is; a crash must not lose acknowledged evidence.
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def inspect(self) -> StoreInspection:
        if not self.root.is_dir():
            raise EvidenceUnavailable(f"{self.root}: no evidence log here (not a directory)")
        strays = sorted(
            name
            for name in self._names()
            if not ENTRY_NAME.match(name) and not (name.startswith(".") and name.endswith(_TEMP_SUFFIX))
        )
        warnings = [f"{self.root / name}: not an entry name ({{seq:012d}}.json); ignored" for name in strays]
        return StoreInspection(location={"backend": "local", "path": str(self.root.resolve())}, warnings=warnings)
