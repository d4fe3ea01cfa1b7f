"""Properties: any sequence of appends verifies; any single-byte change to any entry file is caught at its seq."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinops.evidence import GENESIS_HASH, EvidenceEntry, EvidenceKind, EvidenceLog, StoredEntry, check_chain
from clinops.evidence.phi import find_phi, is_identifier_key
from tests.clinops.evidence.helpers import (
    APPROVER,
    CI,
    DEPLOYER,
    KEY,
    MODEL,
    OTHER_MODEL,
    entry_path,
    overwrite,
    stepping_clock,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
detail_keys = st.text(min_size=1, max_size=12).filter(lambda k: not is_identifier_key(k))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(detail_keys, children, max_size=3),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(list(EvidenceKind)),
        "model": st.sampled_from([MODEL, OTHER_MODEL]),
        "model_version": st.none() | st.integers(min_value=1, max_value=9),
        "actor": st.sampled_from([CI, DEPLOYER, APPROVER]),
        "reason": st.text(min_size=3, max_size=60),
        "details": st.dictionaries(detail_keys, json_values, max_size=4),
    }
).filter(lambda event: not find_phi(event["details"], event["reason"]))

# Bytes that could turn canonical JSON into equivalent JSON: whitespace, exponent and sign characters, escapes.
TRICKY_BYTES = b' \t\r\n0123456789eE+-./\\"u'

APPEND_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAMPER_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def write_log(root: Path, appended: list[dict[str, Any]]) -> EvidenceLog:
    log = EvidenceLog.local(root, "prod", clock=stepping_clock())
    # These properties are about content, not durability: fsync costs ~10 ms an append on this disk.
    with mock.patch("clinops.evidence.local.os.fsync"):
        for event in appended:
            log.append(**event)
    return log


@APPEND_SETTINGS
@given(appended=st.lists(events, min_size=1, max_size=8))
def test_any_sequence_of_appends_verifies(appended: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = write_log(Path(directory), appended)
        report = log.verify(expected_head=log.head())
        assert report.ok, report.problems
        assert report.entries == len(appended)
        entries = log.entries()
        assert [e.seq for e in entries] == list(range(len(appended)))
        assert [(e.kind, e.reason, e.details) for e in entries] == [
            (event["kind"], event["reason"], event["details"]) for event in appended
        ]


@TAMPER_SETTINGS
@given(appended=st.lists(events, min_size=1, max_size=4), data=st.data())
def test_any_single_byte_change_is_caught_at_that_entry(appended: list[dict[str, Any]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = write_log(Path(directory), appended)
        seq = data.draw(st.integers(min_value=0, max_value=len(appended) - 1), label="seq")
        path = entry_path(Path(directory), seq)
        raw = bytearray(path.read_bytes())
        # The framing bytes at either end are drawn often: a trailing newline turned into a space is still JSON.
        ends = st.sampled_from([0, len(raw) - 1])
        position = data.draw(ends | st.integers(min_value=0, max_value=len(raw) - 1), label="position")
        replacement = st.sampled_from(TRICKY_BYTES) | st.integers(0, 255)
        raw[position] = data.draw(replacement.filter(lambda b: b != raw[position]), label="byte")
        overwrite(path, bytes(raw))
        report = log.verify()
        assert not report.ok
        # Exactly that entry, nothing else (a changed head entry also no longer matches the published head).
        assert {p.seq for p in report.problems} == {seq}, report.problems


def test_every_position_with_every_tricky_byte_is_caught() -> None:
    """Exhaustive where random sampling is thin: each byte of an entry replaced by each byte that could yield
    equivalent JSON (and by its case flip) is caught, and only at that entry."""
    entry = EvidenceEntry.seal(
        KEY,
        seq=0,
        kind="drift",
        stack="prod",
        model=MODEL,
        actor=CI,
        reason="PSI drift é \u2028",
        at=stepping_clock()(),
        details={"psi": 1e16, "delta": -0.5, "note": 'a"b\\c\n', "ok": True, "none": None},
        prev_hash=GENESIS_HASH,
    )
    raw = entry.to_bytes()
    assert b"e+16" in raw and b"\\" in raw  # the exponent and escapes are really there to be tampered with
    missed = []
    for position, original in enumerate(raw):
        for byte in {*TRICKY_BYTES, original ^ 0x20} - {original}:
            changed = raw[:position] + bytes([byte]) + raw[position + 1 :]
            if [p.seq for p in check_chain([StoredEntry(0, changed)], key=KEY).problems] != [0]:
                missed.append((position, chr(byte)))
    assert missed == []
