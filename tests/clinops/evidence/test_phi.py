"""No patient data in evidence: identifier keys and SSN-shaped values are refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clinops.evidence import GENESIS_HASH, EvidenceEntry, EvidenceLog, PHIError, check_no_phi, find_phi
from tests.clinops.evidence.helpers import CI, KEY, MODEL, stepping_clock


@pytest.mark.parametrize(
    "key",
    [
        "mrn",
        "MRN",
        "name",
        "Name",
        "first_name",
        "lastName",
        "dob",
        "date_of_birth",
        "DateOfBirth",
        "ssn",
        "social_security_number",
        "address",
        "street_address",
        "zip",
        "phone",
        "phone_number",
        "fax",
        "email",
        "email_address",
        "patient_id",
        "patientName",
        "patient_first_name",
        "member_zip",
        "input_mrn",
        "patientSSN",
        "health_plan_id",
        "encounter-id",
        "admission_date",
        "ip_address",
    ],
)
def test_identifier_keys_are_refused(key: str) -> None:
    with pytest.raises(PHIError, match=f"details.{key}: key names a patient identifier"):
        check_no_phi({key: "x"})


@pytest.mark.parametrize(
    "key",
    [
        "model_name",
        "endpoint_name",
        "alarm_name",
        "plan_sha256",
        "rows_scored",
        "patients_scored",
        "psi",
        "auc",
        "feature",
        "p99_ms",
        "ticket",
        "canary_percent",
        "to_version",
        "dobutamine_dose_bucket",
    ],
)
def test_operational_keys_pass(key: str) -> None:
    assert find_phi({key: 1}) == []


def test_nested_keys_and_lists_are_checked_with_their_path() -> None:
    found = find_phi({"cohort": [{"ok": 1}, {"details": {"Email": "x"}}]})
    assert found == ["details.cohort[1].details.Email: key names a patient identifier"]


def test_ssn_shaped_values_are_refused_in_details_and_reason() -> None:
    assert find_phi({"note": "see 123-45-6789"}, "contact 987-65-4321") == [
        "details.note: value looks like a Social Security number",
        "reason: value looks like a Social Security number",
    ]
    assert find_phi({"ticket": "CGB-2025-0112", "range": "1234-56-78901"}) == []


def test_append_refuses_phi_and_writes_nothing(tmp_path: Path) -> None:
    log = EvidenceLog.local(tmp_path, "prod", clock=stepping_clock())
    with pytest.raises(PHIError, match=r"evidence must never hold patient data; refused: details\.mrn"):
        log.append("drift", model=MODEL, actor=CI, reason="drift incident", details={"mrn": "000123"})
    assert list(tmp_path.iterdir()) == []


def test_an_entry_cannot_be_built_with_phi_either() -> None:
    with pytest.raises(ValidationError, match="patient identifier"):
        EvidenceEntry.seal(
            KEY,
            seq=0,
            kind="drift",
            stack="prod",
            model=MODEL,
            actor=CI,
            reason="drift incident",
            at=stepping_clock()(),
            details={"patient": {"dob": "1950-01-01"}},
            prev_hash=GENESIS_HASH,
        )
