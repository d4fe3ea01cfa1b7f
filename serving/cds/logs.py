"""The CDS service's log: one JSON line per event, with service ids, outcomes, counts and timings only.

No patient or encounter id, no FHIR content, no token, no free text from the request is ever passed here:
callers hand over only the fields below, and `event` refuses any other key, so a new call site cannot start
logging PHI by accident.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

ALLOWED_FIELDS = frozenset(
    {
        "service", "hook", "status", "card", "hold", "reason_kind", "missing", "outside", "latency_ms",
        "model_version", "band", "fetched", "unparsable", "outcome", "items", "auth", "method", "path_kind",
        "origin_allowed", "error", "stack", "host", "port",
    }
)  # fmt: skip


class CdsLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def event(self, name: str, **fields: Any) -> None:
        unknown = set(fields) - ALLOWED_FIELDS
        if unknown:
            raise ValueError(f"log fields {sorted(unknown)} are not on the CDS log's allow-list")
        line = json.dumps({"t": round(time.time(), 3), "event": name, **fields}, separators=(",", ":"), default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
