"""Guard against patient identifiers in evidence.

Evidence is kept for six years, replicated to auditors and is not itself a PHI store, so it must never hold
patient data. This is a guard against mistakes, not a DLP scanner: it refuses `details` keys that name a
HIPAA identifier (45 CFR 164.514(b)(2)) or describe an individual, and SSN-shaped values anywhere in
`details` or `reason`. Aggregates are fine under neutral names (`rows_scored`, not `patient_count`).
Keys are checked at every depth, so per-feature statistics belong in a list of records
(`[{"feature": "zip3", "psi": 0.31}]`), not in a dict keyed by feature name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from clinops.evidence.errors import PHIError

# Compared after lower-casing and dropping everything but letters and digits (`Patient_ID` -> `patientid`).
DENYLISTED_KEYS = frozenset(
    {
        # names
        "name",
        "firstname",
        "lastname",
        "fullname",
        "givenname",
        "familyname",
        "surname",
        "middlename",
        "maidenname",
        "patientname",
        # record and account numbers
        "mrn",
        "medicalrecordnumber",
        "medicalrecord",
        "patientid",
        "patientnumber",
        "personid",
        "subjectid",
        "memberid",
        "membernumber",
        "beneficiaryid",
        "healthplanid",
        "insuranceid",
        "policynumber",
        "accountnumber",
        "encounterid",
        "visitid",
        "admissionid",
        "claimid",
        "licensenumber",
        "certificatenumber",
        "vehicleid",
        "licenseplate",
        "deviceserial",
        "serialnumber",
        # dates of an individual
        "dob",
        "dateofbirth",
        "birthdate",
        "birthday",
        "admissiondate",
        "dischargedate",
        "dateofdeath",
        "deathdate",
        # government identifiers
        "ssn",
        "socialsecuritynumber",
        "socialsecurity",
        "nationalid",
        "passportnumber",
        "driverslicense",
        # contact and location smaller than a state
        "address",
        "streetaddress",
        "street",
        "addressline1",
        "addressline2",
        "city",
        "county",
        "zip",
        "zipcode",
        "postcode",
        "postalcode",
        "phone",
        "phonenumber",
        "telephone",
        "mobile",
        "cell",
        "fax",
        "email",
        "emailaddress",
        "ipaddress",
        "url",
        # biometrics and images
        "photo",
        "faceimage",
        "fingerprint",
        "biometric",
        "voiceprint",
    }
)

# A key containing one of these tokens anywhere (`input_mrn`, `patientSSN`) is refused.
IDENTIFIER_TOKENS = frozenset({"mrn", "ssn", "dob"})
# A key starting with one of these words describes an individual (`patient_first_name`, `member_zip`).
INDIVIDUAL_PREFIXES = frozenset({"patient", "member", "subject", "person", "beneficiary", "enrollee"})

_SSN_SHAPE = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_TOKEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def normalize_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _tokens(key: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(key)]


def is_identifier_key(key: str) -> bool:
    tokens = _tokens(key)
    return (
        normalize_key(key) in DENYLISTED_KEYS
        or any(t in IDENTIFIER_TOKENS for t in tokens)
        or (bool(tokens) and tokens[0] in INDIVIDUAL_PREFIXES)
    )


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (path, problem) for every identifier key or SSN-shaped string inside `value`."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}"
            if isinstance(key, str) and is_identifier_key(key):
                yield child_path, "key names a patient identifier"
            yield from _walk(child, child_path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]")
    elif isinstance(value, str) and _SSN_SHAPE.search(value):
        yield path, "value looks like a Social Security number"


def find_phi(details: Any, reason: str | None = None) -> list[str]:
    """Every place in `details` (and `reason`) that looks like patient data, as `path: problem` lines."""
    found = [f"{path}: {problem}" for path, problem in _walk(details, "details")]
    if reason is not None and _SSN_SHAPE.search(reason):
        found.append("reason: value looks like a Social Security number")
    return found


def check_no_phi(details: Any, reason: str | None = None) -> None:
    found = find_phi(details, reason)
    if found:
        raise PHIError(
            "evidence must never hold patient data; refused: "
            + "; ".join(found)
            + ". Fix: record aggregates or references (model, package ARN, plan hash) under neutral names."
        )
