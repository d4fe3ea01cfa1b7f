"""The breaker's compare-and-set state record in SSM (moto): succession of versions decides the winner."""

from __future__ import annotations

from typing import Any

from clinops.names import breaker_state_parameter
from serving.guardrails.state import MAX_VALUE_BYTES, BreakerState, SsmStateStore
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
        recent_event_ids=(event_id,),
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
    assert back.last_event_id == "e-1" and back.reason.endswith("...") and back.remembers("e-1")
