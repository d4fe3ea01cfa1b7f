"""The storage interface both backends implement. The log's rules live in `log.py`, not here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from clinops.evidence.report import Problem

ENTRY_NAME = re.compile(r"^(\d{12})\.json$")


def entry_name(seq: int) -> str:
    return f"{seq:012d}.json"


@dataclass(frozen=True)
class StoreInspection:
    """What a backend can tell about itself beyond the entries: location, lock settings, stray objects."""

    location: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class EvidenceStore(Protocol):
    def seqs(self, after: int = -1) -> list[int]:
        """Sorted seqs of stored entries greater than `after`."""
        ...

    def read(self, seq: int) -> bytes:
        """The stored bytes of one entry; EvidenceUnavailable when it cannot be read."""
        ...

    def create(self, seq: int, data: bytes) -> bool:
        """Store a new entry; False (and nothing written) when `seq` is already taken. Never overwrites."""
        ...

    def inspect(self) -> StoreInspection:
        """EvidenceUnavailable when the log's location does not exist or cannot be listed."""
        ...
