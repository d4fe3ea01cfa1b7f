"""Whether the model may answer clinicians right now, from the guardrails' own records.

* The circuit breaker's SSM record (`serving.guardrails.state`): a rollback requested or under way means the
  circuit is open; a landed rollback means the last-known-good version answers until a new release changes
  the stack's pin (then the record is history); a failed rollback leaves the endpoint in doubt.
* CloudWatch alarms in force (`clinops.names.cds_alarm_names`): drift, score drift, quality, override rate.

Any of those, or a record that cannot be read, is a `Hold` - the service shows the fallback card, never the
score. Reads are cached for `ttl_seconds` per model so a busy discharge list costs one SSM and one
CloudWatch call per model per interval, not per card.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from clinops.names import cds_alarm_names, config_version, pinned_parameter
from serving.guardrails.state import FAILED, IN_FLIGHT, LANDED, BreakerState, Snapshot, SsmStateStore

CIRCUIT_OPEN, ROLLED_BACK, ROLLBACK_FAILED, ALARM, UNKNOWN = (
    "circuit-open",
    "rolled-back",
    "rollback-failed",
    "alarm",
    "guardrails-unreadable",
)


@dataclass(frozen=True)
class Hold:
    """Why the score is withheld, in words for the card, and which version answers if one does."""

    kind: str
    reason: str
    answering_version: int | None = None


class GuardrailSource(Protocol):
    def breaker(self, model: str) -> BreakerState | None: ...

    def pinned_config(self, model: str) -> str | None: ...

    def alarms_in_force(self, model: str) -> list[str]: ...


class AwsGuardrails:
    """The deployed stack's records: SSM (breaker state, pin) and CloudWatch DescribeAlarms."""

    def __init__(self, stack: str, ssm: Any, cloudwatch: Any) -> None:
        self.stack, self.ssm, self.cloudwatch = stack, ssm, cloudwatch
        self.store = SsmStateStore(ssm)

    def breaker(self, model: str) -> BreakerState | None:
        snapshot: Snapshot = self.store.read(self.stack, model)
        return snapshot.state

    def pinned_config(self, model: str) -> str | None:
        return str(self.ssm.get_parameter(Name=pinned_parameter(self.stack, model))["Parameter"]["Value"])

    def alarms_in_force(self, model: str) -> list[str]:
        names = cds_alarm_names(self.stack, model)
        answer = self.cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        alarms = answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", [])
        return sorted(a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM")


class LocalGuardrails:
    """`clinops cds serve --local`: the same records as files, `DIR/<model>.json` =
    {"breaker": <the breaker's SSM record>, "pinned": "<endpoint config>", "alarms": ["<alarm in force>"]}."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _doc(self, model: str) -> dict[str, Any]:
        path = self.root / f"{model}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def breaker(self, model: str) -> BreakerState | None:
        record = self._doc(model).get("breaker")
        return None if record is None else BreakerState.from_json(json.dumps(record))

    def pinned_config(self, model: str) -> str | None:
        return self._doc(model).get("pinned")

    def alarms_in_force(self, model: str) -> list[str]:
        return list(self._doc(model).get("alarms", []))


class GuardrailView:
    def __init__(
        self, source: GuardrailSource, *, ttl_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source, self.ttl, self.clock = source, ttl_seconds, clock
        self._cache: dict[str, tuple[float, Hold | None]] = {}
        self._lock = threading.Lock()

    def hold(self, model: str) -> Hold | None:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(model)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            answer = self._judge(model)
        except Exception as exc:  # unreadable guardrails are not a green light
            answer = Hold(UNKNOWN, f"the guardrails' state could not be read ({type(exc).__name__})")
        with self._lock:
            self._cache[model] = (now, answer)
        return answer

    def _judge(self, model: str) -> Hold | None:
        state = self.source.breaker(model)
        if state is not None and state.phase in IN_FLIGHT:
            target = config_version(state.to_config or "")
            return Hold(
                CIRCUIT_OPEN,
                f"the circuit breaker is open: a rollback to version {target or 'last-known-good'} is under way",
                target,
            )
        if state is not None and state.phase in (LANDED, FAILED):
            try:
                pinned = self.source.pinned_config(model)
            except Exception:
                pinned = None  # cannot tell a new release from the rollback: stay on the safe side
            still = pinned is None or pinned == state.from_config  # no release since the rollback
            if still and state.phase == FAILED:
                return Hold(ROLLBACK_FAILED, "the circuit breaker could not roll the model back; its state is in doubt")
            if still:
                target = config_version(state.to_config or "")
                return Hold(
                    ROLLED_BACK,
                    f"the model was rolled back to its last-known-good version {target}, which answers now "
                    f"(rolled back from version {config_version(state.from_config or '')})",
                    target,
                )
        alarms = self.source.alarms_in_force(model)
        if alarms:
            return Hold(ALARM, "monitoring alarm in force: " + ", ".join(alarms))
        return None
