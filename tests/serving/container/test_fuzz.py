"""Property: whatever a client sends, the answer is never a 5xx; a 200 always holds probabilities."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.container.client import READMISSION_ROW, Client
from tests.serving.container.conftest import Running

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "text/csv",
            "application/json; charset=utf-8",
            "text/csv; charset=UTF-8",
            "text/plain",
            "",
            "application/json; charset=utf-16",
            "TEXT/CSV",
            "*/*",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = st.one_of(st.sampled_from([*READMISSION_ROW, "mrn", "readmitted_30d", "instances"]), st.text(max_size=12))
# a record: the valid row with some fields replaced, dropped or added, so most mistakes are one field away
RECORDS = st.builds(
    lambda changes, dropped: {k: v for k, v in {**READMISSION_ROW, **changes}.items() if k not in dropped},
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=4),
    st.sets(st.sampled_from(list(READMISSION_ROW)), max_size=3),
)


def _csv(records: list[dict[str, Any]]) -> str:
    header = list(records[0]) if records else []
    lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in records]
    return "\n".join(lines)


BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    RECORDS.map(lambda r: json.dumps(r).encode()),
    st.lists(RECORDS, max_size=5).map(lambda rs: json.dumps({"instances": rs}).encode()),
    st.lists(RECORDS, min_size=1, max_size=5).map(lambda rs: _csv(rs).encode()),
)


def _check(reply_status: int, raw: bytes) -> None:
    assert reply_status < 500, raw
    if reply_status == 200:
        body = json.loads(raw)
        assert all(s is None or 0.0 <= s <= 1.0 for s in body["scores"])
        assert len(body["flags"]) == len(body["scores"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, content_type=CONTENT_TYPES)
def test_random_bodies_and_content_types_never_get_a_5xx(running: Running, body: bytes, content_type: str) -> None:
    client = Client(running.port)
    headers = {"Content-Type": content_type} if content_type else {}
    reply = client.request("POST", "/invocations", body, headers)
    _check(reply.status, reply.raw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(RECORDS, min_size=1, max_size=4))
def test_near_valid_records_are_scored_or_rejected_field_by_field(
    running: Running, records: list[dict[str, Any]]
) -> None:
    reply = Client(running.port).post_json(records)
    _check(reply.status, reply.raw)
    if reply.status == 400:
        problems = reply.json["problems"]
        assert problems and all(p["row"] is None or 0 <= p["row"] < len(records) for p in problems)
    else:
        assert reply.status == 200
        assert len(reply.json["scores"]) == len(records)
