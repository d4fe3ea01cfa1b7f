"""The circuit breaker's state: SSM parameter `/clinops/<stack>/<model>/circuit-breaker`, one JSON record per
decision, written with compare-and-set so two concurrent invocations cannot both act.

Why SSM, and how the compare-and-set works. SSM is already reachable from the VPC (interface endpoint) and
already holds the pinned and last-known-good names, so no new service, table or endpoint is needed. PutParameter
has no condition, but every write gets the next version number, assigned by SSM one at a time. So a writer reads
the parameter at version v, decides, and writes a record saying `based_on: v`; it won if and only if SSM
answers with version v + 1 - exactly one writer can get v + 1. The loser re-reads and decides again (it usually
finds the winner's record and stands down). A loser's own write stays in the history with a broken succession
(`based_on` + 1 != its version) and is ignored by every reader, so the state is the newest record whose
succession holds. Creation races are settled the same way (`Overwrite=False` fails for the second creator).

Each record is complete (carries the last action and the recent event ids forward), so only the newest valid
record is ever needed. SSM keeps the latest 100 versions; readers page through at most two pages. A record whose
JSON does not parse (a hand edit) is ignored like a lost write. Standard library + boto3 only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from clinops.names import breaker_state_parameter

MAX_RECENT_EVENTS = 16  # event ids remembered for duplicate detection (EventBridge retries within hours)
MAX_VALUE_BYTES = 4096  # SSM standard tier
LOST_WRITE_CODES = frozenset({"ParameterAlreadyExists", "TooManyUpdates"})


@dataclass(frozen=True)
class BreakerState:
    """One decision. `last_action_at`/`from`/`to` describe the newest rollback and are carried forward."""

    outcome: str
    last_event_id: str
    alarm: str
    alarm_at: str | None
    decided_at: str
    reason: str
    last_action_at: str | None = None
    last_action_event_id: str | None = None
    from_config: str | None = None
    to_config: str | None = None
    recent_event_ids: tuple[str, ...] = ()
    based_on: int = 0

    def to_json(self) -> str:
        doc = asdict(self)
        doc["from"], doc["to"] = doc.pop("from_config"), doc.pop("to_config")
        doc["recent_event_ids"] = list(self.recent_event_ids)
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > MAX_VALUE_BYTES:  # only `reason` is free text: shorten it, never the ids
            over = len(text.encode()) - MAX_VALUE_BYTES
            return replace(self, reason=self.reason[: max(0, len(self.reason) - over - 3)] + "...").to_json()
        return text

    @classmethod
    def from_json(cls, text: str) -> BreakerState | None:
        try:
            doc = json.loads(text)
            doc["from_config"], doc["to_config"] = doc.pop("from", None), doc.pop("to", None)
            doc["recent_event_ids"] = tuple(doc.get("recent_event_ids") or ())
            state = cls(**doc)
        except (ValueError, TypeError, AttributeError):
            return None
        return state if isinstance(state.based_on, int) else None

    def remembers(self, event_id: str) -> bool:
        return event_id == self.last_event_id or event_id in self.recent_event_ids


@dataclass(frozen=True)
class Snapshot:
    """What a reader saw: the newest version number (valid or not) and the newest valid record."""

    version: int
    state: BreakerState | None
    ignored_versions: tuple[int, ...] = field(default=())


class SsmStateStore:
    def __init__(self, ssm: Any) -> None:
        self.ssm = ssm

    def read(self, stack: str, model: str) -> Snapshot:
        name = breaker_state_parameter(stack, model)
        history: list[dict[str, Any]] = []
        try:
            for page in self.ssm.get_paginator("get_parameter_history").paginate(Name=name, MaxResults=50):
                history.extend(page.get("Parameters", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return Snapshot(0, None)
            raise
        if not history:
            return Snapshot(0, None)
        newest = max(int(p["Version"]) for p in history)
        ignored: list[int] = []
        for item in sorted(history, key=lambda p: int(p["Version"]), reverse=True):
            state = BreakerState.from_json(item.get("Value", ""))
            if state is not None and state.based_on == int(item["Version"]) - 1:
                return Snapshot(newest, state, tuple(ignored))
            ignored.append(int(item["Version"]))
        return Snapshot(newest, None, tuple(ignored))

    def commit(self, stack: str, model: str, snapshot: Snapshot, state: BreakerState) -> bool:
        """Write `state` decided on `snapshot`; True only if no other write came between (see module doc)."""
        record = replace(state, based_on=snapshot.version)
        try:
            answer = self.ssm.put_parameter(
                Name=breaker_state_parameter(stack, model),
                Value=record.to_json(),
                Type="String",
                Tier="Standard",
                Overwrite=snapshot.version > 0,
                Description="clinops circuit breaker: newest decision (see serving/guardrails/state.py)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in LOST_WRITE_CODES:
                return False
            raise
        return int(answer["Version"]) == snapshot.version + 1
