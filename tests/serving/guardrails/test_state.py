"""The breaker's compare-and-set state record in SSM (moto): succession of versions decides the winner."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from clinops.names import BREAKER_ALARM_SUFFIXES, ROLLBACK_ALARM_SUFFIXES, breaker_state_parameter
from serving.guardrails.state import MAX_VALUE_BYTES, WAIT_COOLDOWN, BreakerState, PendingAlarm, SsmStateStore
from tests.serving.conftest import MODEL, STACK

NAME = breaker_state_parameter(STACK, MODEL)


def record(event_id: str, reason: str = "because") -> BreakerState:
    return BreakerState(
        outcome="rolling-back",
        last_event_id=event_id,
        alarm="a",
        alarm_at=None,
        decided_at="2026-03-01T02:00:00.000Z",
        reason=reason,
        seen={"a": "2026-03-01T02:00:00.000Z"},
    )


def test_of_two_writers_on_one_snapshot_only_the_first_wins_and_readers_see_its_record(
    aws: None, pool: dict[str, Any]
) -> None:
    store = SsmStateStore(pool["ssm"])
    empty = store.read(STACK, MODEL)
    assert (empty.version, empty.state) == (0, None)

    assert store.commit(STACK, MODEL, empty, record("winner")) is True
    assert store.commit(STACK, MODEL, empty, record("loser")) is False  # creation race: ParameterAlreadyExists

    first = store.read(STACK, MODEL)
    assert (first.version, first.state.last_event_id) == (1, "winner")
    assert store.commit(STACK, MODEL, first, record("second")) is True
    assert store.commit(STACK, MODEL, first, record("late")) is False  # SSM gave it version 3, not 2

    after = store.read(STACK, MODEL)
    assert pool["ssm"].get_parameter(Name=NAME)["Parameter"]["Value"].count('"late"') >= 1  # the newest write...
    assert (after.version, after.state.last_event_id, after.ignored_versions) == (3, "second", (3,))  # ...is ignored
    assert after.state.based_on == 1


def test_a_hand_edited_value_is_ignored_not_trusted(aws: None, pool: dict[str, Any]) -> None:
    store = SsmStateStore(pool["ssm"])
    store.commit(STACK, MODEL, store.read(STACK, MODEL), record("real"))
    pool["ssm"].put_parameter(Name=NAME, Value='{"outcome": "rolled-back"', Type="String", Overwrite=True)
    snapshot = store.read(STACK, MODEL)
    assert (snapshot.version, snapshot.state.last_event_id) == (2, "real")


def test_a_long_reason_is_shortened_to_fit_ssm_and_ids_survive(aws: None, pool: dict[str, Any]) -> None:
    store = SsmStateStore(pool["ssm"])
    long = record("e-1", reason="x" * 10_000)
    assert len(long.to_json().encode()) <= MAX_VALUE_BYTES
    assert store.commit(STACK, MODEL, store.read(STACK, MODEL), long)
    back = store.read(STACK, MODEL).state
    assert back.last_event_id == "e-1" and back.reason.endswith("...") and back.remembers("a", "2026-03-01T02:00:00Z")


def test_the_fullest_possible_record_fits_an_ssm_standard_parameter() -> None:
    """Every alarm the breaker obeys pending and seen, at the longest names SageMaker and EventBridge allow
    (endpoint and configuration names 63 characters, event ids 36, package group 63)."""
    endpoint = "e" * 63
    alarms = [f"{endpoint}-{suffix}" for suffix in (*ROLLBACK_ALARM_SUFFIXES, *BREAKER_ALARM_SUFFIXES)]
    stamp, event = "2026-03-01T02:00:00.000Z", "0" * 36
    package = f"arn:aws-us-gov:sagemaker:us-gov-west-1:111111111111:model-package/{'g' * 63}/99999"
    full = replace(
        record(event, reason="x" * 2000),
        alarm=alarms[0],
        alarm_at=stamp,
        phase="updating",
        rollback_id=event,
        rollback_alarm=alarms[0],
        requested_at=stamp,
        attempt_at=stamp,
        attempts=3,
        from_config="c" * 63,
        to_config="d" * 63,
        to_package_arn=package,
        last_action_at=stamp,
        last_action_event_id=event,
        prior_action_at=stamp,
        prior_action_event_id=event,
        pending=tuple(PendingAlarm(a, event, stamp, WAIT_COOLDOWN, stamp) for a in alarms),
        seen={a: stamp for a in alarms},
        based_on=99,
    )
    text = full.to_json()
    assert len(text.encode()) <= MAX_VALUE_BYTES
    back = BreakerState.from_json(text)
    assert back is not None and back.pending == full.pending and back.seen == full.seen
    assert len(back.reason) > 500  # room to spare: only the free text was shortened


def test_a_first_version_record_is_read_with_its_phase_and_its_newest_alarm_remembered() -> None:
    old = {
        "outcome": "rolling-back",
        "last_event_id": "e-7",
        "alarm": "clinops-prod-m-drift",
        "alarm_at": "2026-03-01T02:00:00.000Z",
        "decided_at": "2026-03-01T02:00:30.000Z",
        "reason": "switching",
        "last_action_at": "2026-03-01T02:00:30.000Z",
        "last_action_event_id": "e-7",
        "from": "v4",
        "to": "v3",
        "recent_event_ids": ["e-7", "e-6"],
        "based_on": 4,
    }
    state = BreakerState.from_json(json.dumps(old))
    assert state is not None
    assert (state.phase, state.rollback_id, state.attempts, state.to_config) == ("requested", "e-7", 1, "v3")
    assert state.remembers("clinops-prod-m-drift", "2026-03-01T02:00:00Z")
    assert BreakerState.from_json(json.dumps({**old, "outcome": "rolled-back"})).phase == "updating"
