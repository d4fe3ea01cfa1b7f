"""Structured log lines on stdout (CloudWatch Logs on SageMaker), one JSON object per line.

Invocation lines carry exactly the fields the endpoint's metric filters read (`infra.rollback_alarms`): counts,
status, latency, model identity, whether the request was synthetic (the canary's, marked by Custom-Attributes)
and which worker process answered. Nothing from a request body - no feature value, no field name a client
chose, no identifier - is ever passed here; callers hand over counts only.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO


class EventLog:
    def __init__(self, endpoint: str, stream: TextIO | None = None) -> None:
        self.endpoint = endpoint
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()  # one whole line at a time from concurrent request threads

    def event(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()

    def invocation(
        self,
        *,
        model: str | None,
        model_version: str | None,
        status: int,
        rows: int,
        invalid_scores: int,
        latency_ms: float,
        problems: int | None = None,
        synthetic: bool = False,
        worker: int | None = None,
        explained: int | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "endpoint": self.endpoint,
            "model": model,
            "model_version": model_version,
            "status": status,
            "rows": rows,
            "invalid_scores": invalid_scores,
            "latency_ms": round(latency_ms, 3),
            "synthetic": synthetic,
        }
        if problems is not None:
            fields["problems"] = problems
        if worker is not None:
            fields["worker"] = worker
        if explained is not None:  # how many contributions per row were asked for (a count, never which)
            fields["explained"] = explained
        self.event("invocation", **fields)
