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

The record is a small state machine (`phase`) for the model's newest rollback:

    idle --alarm, all checks pass--> requested --UpdateEndpoint accepted--> updating --InService on target--> landed
                                        |  (crash/timeout: recovered by       |  (back on another config, Failed,
                                        |   the next invocation/schedule)     |   or not landed in time)
                                        +--------- rejected / gave up --------+--> failed

`requested` is committed *before* UpdateEndpoint (it claims the cooldown, so two invocations cannot both switch);
`landed` is written only when DescribeEndpoint shows InService on the last-known-good configuration; `failed`
gives the cooldown back. "Cooldown" is not a phase of its own: it is `landed` younger than the cooldown.

Alarms that cannot be acted on *yet* (the endpoint is mid-deployment, a rollback is in flight, the cooldown runs)
are kept in `pending` and re-judged, against the alarm's current state, by every invocation and the schedule.

Idempotency: `seen` maps each alarm name to the state-change time of the newest ALARM transition decided for it.
An event whose transition is not newer (a redelivery, or an older transition arriving late) is a duplicate. The
key (alarm name, CloudWatch's state-change timestamp) is what a redelivery repeats; the map holds one entry per
alarm the breaker obeys (6 per model: `names.ROLLBACK_ALARM_SUFFIXES` + `BREAKER_ALARM_SUFFIXES`), so it never
evicts anything: it covers EventBridge's retry window (24 h, 185 attempts) and any later redelivery, at any event
rate. (The first version kept the last 16 event ids: after 16 other events, a redelivered refusal was judged
again.) Sizes at the longest names AWS allows: 6 seen (103 B each) + 6 pending (235 B each) + the other fields
(1.06 KB) = 3.1 KB, under the 4 KB of an SSM standard parameter; `reason` (free text) is shortened to fit the
remaining ~990 B. A test fills every slot.

Each record is complete (carries the rollback, pending alarms and seen transitions forward), so only the newest
valid record is ever needed. SSM keeps the latest 100 versions; readers page through at most two pages. A record
whose JSON does not parse (a hand edit) is ignored like a lost write; records of the first version (no `phase`)
are read with their phase inferred. Standard library + boto3 only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from clinops.names import breaker_state_parameter
from serving.guardrails.events import parse_time

MAX_VALUE_BYTES = 4096  # SSM standard tier
LOST_WRITE_CODES = frozenset({"ParameterAlreadyExists", "TooManyUpdates"})

IDLE, REQUESTED, UPDATING, LANDED, FAILED = "idle", "requested", "updating", "landed", "failed"
PHASES = (IDLE, REQUESTED, UPDATING, LANDED, FAILED)
IN_FLIGHT = frozenset({REQUESTED, UPDATING})
# Why an alarm waits in `pending`: each is re-judged once its cause may have passed.
WAIT_DEPLOYMENT, WAIT_IN_FLIGHT, WAIT_COOLDOWN = "deployment", "rollback-in-flight", "cooldown"
# First-version outcomes -> the phase they meant ("rolled-back" was written when UpdateEndpoint was accepted,
# so it is read as `updating` and confirmed by DescribeEndpoint like any other).
_LEGACY_PHASE = {"rolling-back": REQUESTED, "rolled-back": UPDATING}


@dataclass(frozen=True)
class PendingAlarm:
    """An ALARM the breaker could not act on yet; re-judged (alarm state read again) from `not_before` on."""

    alarm: str
    event_id: str
    alarm_at: str  # the ALARM transition's time (CloudWatch)
    waits_for: str  # WAIT_*
    not_before: str | None = None  # cooldown end; None = at the next invocation

    @classmethod
    def from_doc(cls, doc: Any) -> PendingAlarm:
        return cls(
            **{k: doc[k] for k in ("alarm", "event_id", "alarm_at", "waits_for")}, not_before=doc.get("not_before")
        )


@dataclass(frozen=True)
class BreakerState:
    """The newest decision, the newest rollback (`phase`, `last_action_*`, `from`/`to`), pending and seen alarms."""

    outcome: str
    last_event_id: str
    alarm: str
    alarm_at: str | None
    decided_at: str
    reason: str
    phase: str = IDLE  # of the newest rollback (`rollback_*`, `from`/`to`)
    rollback_id: str | None = None  # the event id that requested it
    rollback_alarm: str | None = None
    requested_at: str | None = None
    attempt_at: str | None = None  # when the newest UpdateEndpoint call was claimed
    attempts: int = 0  # UpdateEndpoint calls claimed for the newest rollback
    from_config: str | None = None
    to_config: str | None = None
    to_package_arn: str | None = None
    # The newest rollback that has not failed: the cooldown and the order of alarms run from it. A failed
    # rollback gives it back (prior_*), so a deployment that never lands does not block the next alarm.
    last_action_at: str | None = None
    last_action_event_id: str | None = None
    prior_action_at: str | None = None
    prior_action_event_id: str | None = None
    pending: tuple[PendingAlarm, ...] = ()
    seen: dict[str, str] = field(default_factory=dict)  # alarm -> newest decided ALARM transition (ISO time)
    based_on: int = 0

    def to_json(self) -> str:
        doc = asdict(self)
        doc["from"], doc["to"] = doc.pop("from_config"), doc.pop("to_config")
        doc["pending"] = [{k: v for k, v in asdict(p).items() if v is not None} for p in self.pending]
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > MAX_VALUE_BYTES:  # only `reason` is free text: shorten it, never the ids
            over = len(text.encode()) - MAX_VALUE_BYTES
            if over >= len(self.reason):
                raise ValueError(f"circuit-breaker state is {len(text.encode())} bytes, over SSM's {MAX_VALUE_BYTES}")
            return replace(self, reason=self.reason[: max(0, len(self.reason) - over - 3)] + "...").to_json()
        return text

    @classmethod
    def from_json(cls, text: str) -> BreakerState | None:
        try:
            doc = json.loads(text)
            doc["from_config"], doc["to_config"] = doc.pop("from", None), doc.pop("to", None)
            legacy_ids = doc.pop("recent_event_ids", None)
            if "phase" not in doc:  # a first-version record
                doc["phase"] = _LEGACY_PHASE.get(doc.get("outcome"), LANDED if doc.get("last_action_at") else IDLE)
                doc["rollback_id"] = doc.get("last_action_event_id")
                doc["requested_at"] = doc["attempt_at"] = doc.get("last_action_at")
                doc["attempts"] = 1 if doc.get("last_action_at") else 0
            doc["pending"] = tuple(PendingAlarm.from_doc(p) for p in doc.get("pending") or ())
            doc["seen"] = dict(doc.get("seen") or {})
            known = set(cls.__dataclass_fields__)
            state = cls(**{k: v for k, v in doc.items() if k in known})
        except (ValueError, TypeError, AttributeError, KeyError):
            return None
        if legacy_ids is not None and state.alarm and state.alarm_at:  # the first version's newest decision
            state = replace(state, seen={state.alarm: state.alarm_at, **state.seen})
        valid = isinstance(state.based_on, int) and state.phase in PHASES and isinstance(state.attempts, int)
        return state if valid else None

    def remembers(self, alarm: str, changed_at: str) -> bool:
        """True when this alarm's ALARM transition at `changed_at` (or a newer one) was already decided."""
        newest, changed = parse_time(self.seen.get(alarm)), parse_time(changed_at)
        return newest is not None and changed is not None and changed <= newest

    def pending_for(self, alarm: str) -> PendingAlarm | None:
        return next((p for p in self.pending if p.alarm == alarm), None)


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
