"""Synthetic FHIR R4 patients for CDS Hooks requests, made from the synthetic extract rows (`pipelines.data`).

`resources_for_row` inverts the model's FHIR mapping (`pipelines/contracts/<model>.fhir.yaml`), so a row's
features are exactly what the mapping reads back from its resources: one Patient, the current Encounter,
prior Encounters, ICD-10 Conditions summing to its Charlson index, Observations with LOINC codes and UCUM
units (optionally in an alternate unit the contract converts), MedicationRequests, Coverage. Missing values
(NaN) stay missing. `FhirStore` answers the prefetch templates' FHIR searches from those resources - for the
prefetch of a hook request and as the fake FHIR server of tests.

Names and MRNs in the resources are synthetic but shaped like PHI, so tests can prove none reaches a log.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from clinops.models import fill_prefetch_template
from pipelines.contracts.charlson import SUPERSEDES
from pipelines.contracts.fhirmap import FeatureSource, FhirMapping
from pipelines.contracts.model import Contract

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
VITAL_SIGNS = frozenset({"8867-4", "9279-1", "8310-5", "8480-6", "59408-5", "2708-6"})
# One representative ICD-10-CM code per Charlson category, heaviest first: greedy choice sums to any index <= 29.
CHARLSON_CODES: tuple[tuple[str, str, int], ...] = (
    ("hiv_aids", "B20", 6),
    ("metastatic_tumor", "C78.00", 6),
    ("severe_liver", "K72.10", 3),
    ("renal", "N18.3", 2),
    ("hemiplegia", "G81.90", 2),
    ("diabetes_complicated", "E11.22", 2),
    ("myocardial_infarction", "I21.4", 1),
    ("congestive_heart_failure", "I50.9", 1),
    ("peripheral_vascular", "I70.0", 1),
    ("cerebrovascular", "I63.9", 1),
    ("dementia", "F03.90", 1),
    ("chronic_pulmonary", "J44.9", 1),
    ("rheumatic", "M06.9", 1),
    ("peptic_ulcer", "K25.9", 1),
)
assert not set(SUPERSEDES.values()) & {c for c, _, _ in CHARLSON_CODES}  # no pair that would cancel out
BACKGROUND_CONDITION = "I10"  # essential hypertension: no Charlson weight


def _id(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]


def _concept(code: str, system: str | None = None, display: str | None = None) -> dict[str, Any]:
    coding = {"code": code, **({"system": system} if system else {}), **({"display": display} if display else {})}
    return {"coding": [coding]}


def charlson_codes(index: int) -> list[str]:
    left, codes = index, []
    for _, code, weight in CHARLSON_CODES:
        if weight <= left:
            codes.append(code)
            left -= weight
    if left:
        raise ValueError(f"charlson index {index} cannot be built from distinct categories")
    return codes


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class SyntheticPatient:
    """One hook's worth of FHIR: the ids a hook context names and every resource of the patient."""

    patient_id: str
    encounter_id: str
    now: datetime
    resources: list[dict[str, Any]] = field(default_factory=list)


def resources_for_row(
    row: dict[str, Any],
    mapping: FhirMapping,
    contract: Contract,
    *,
    now: datetime | None = None,
    alternate_units: bool = False,
    seed: int = 0,
) -> SyntheticPatient:
    """FHIR resources whose mapped features equal the row's. `alternate_units`: labs in a unit to convert."""
    key = (row.get("mrn"), row.get("encounter_id"), row.get("discharge_date"), seed)
    pid, eid = f"pat-{_id('p', *key)}", f"enc-{_id('e', *key)}"
    discharge = mapping.features.get("length_of_stay_days") is not None
    if now is None:
        now = (
            datetime.fromisoformat(str(row["discharge_date"])).replace(hour=14, tzinfo=UTC)
            if discharge and row.get("discharge_date")
            else datetime(2025, 6, 30, 12, tzinfo=UTC)
        )
    hours = row.get("hours_since_admission")
    los = row.get("length_of_stay_days")
    start = now - (
        timedelta(hours=float(hours)) if hours is not None and not _missing(hours) else timedelta(days=int(los or 1))
    )
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": str(row.get("mrn", "MRN0"))}],
    }
    if row.get("patient_name"):
        given, _, family = str(row["patient_name"]).partition(" ")
        patient["name"] = [{"given": [given], "family": family or given}]
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished" if discharge else "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start.isoformat(), **({"end": now.isoformat()} if discharge else {})},
    }
    out = SyntheticPatient(pid, eid, now, [patient, encounter])
    subject = {"reference": f"Patient/{pid}"}
    for name, spec in mapping.features.items():
        value = row.get(name)
        if _missing(value):
            continue
        _add_feature(out, name, spec, value, contract, patient, encounter, subject, start, alternate_units)
    return out


def _add_feature(
    out: SyntheticPatient,
    name: str,
    spec: FeatureSource,
    value: Any,
    contract: Contract,
    patient: dict[str, Any],
    encounter: dict[str, Any],
    subject: dict[str, Any],
    start: datetime,
    alternate_units: bool,
) -> None:
    reference = datetime.fromisoformat(encounter["period"].get("end") or out.now.isoformat())
    if spec.source == "age":
        years = int(value)
        birth = date(reference.year - years, 1, 1) + timedelta(days=(reference.timetuple().tm_yday - 1) // 2)
        patient["birthDate"] = birth.isoformat()
    elif spec.source == "gender":
        patient["gender"] = next(code for code, category in spec.map.items() if category == value)
    elif spec.source == "coding":
        code = next(code for code, category in spec.map.items() if category == value)
        if spec.resource == "Encounter":
            *parents, leaf = (spec.element or "").split(".")
            target = encounter
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = _concept(code)
        else:
            out.resources.append(
                {
                    "resourceType": spec.resource,
                    "id": _id(out.patient_id, name),
                    "status": "active",
                    "type": _concept(code),
                    "beneficiary": subject,
                    "payor": [{"display": "synthetic payer"}],
                }
            )
    elif spec.source == "prior-encounters":
        window = int(spec.within_days or 365)
        for i in range(int(value)):
            end = start - timedelta(days=1 + (i * (window - 2)) // max(1, int(value)))
            out.resources.append(
                {
                    "resourceType": "Encounter",
                    "id": _id(out.patient_id, name, i),
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": spec.classes[0]},
                    "subject": subject,
                    "period": {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()},
                }
            )
    elif spec.source == "charlson":
        for i, code in enumerate([*charlson_codes(int(value)), BACKGROUND_CONDITION]):
            out.resources.append(
                {
                    "resourceType": "Condition",
                    "id": _id(out.patient_id, "condition", i),
                    "subject": subject,
                    "clinicalStatus": _concept("active", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
                    "verificationStatus": _concept(
                        "confirmed", "http://terminology.hl7.org/CodeSystem/condition-ver-status"
                    ),
                    "code": _concept(code, ICD10),
                }
            )
    elif spec.source == "count":
        for i in range(int(value)):
            out.resources.append(
                {
                    "resourceType": spec.resource,
                    "id": _id(out.patient_id, name, i),
                    "status": "active",
                    "intent": "order",
                    "subject": subject,
                    "medicationCodeableConcept": {"text": f"synthetic medication {i + 1}"},
                }
            )
    elif spec.source == "observation":
        column = contract.columns[name]
        ucum, shown = _unit_for(spec, column, value, alternate_units)
        vital = spec.loinc[0] in VITAL_SIGNS
        code = (
            spec.loinc[-1]
            if (alternate_units and len(spec.loinc) > 1 and ucum != _primary_ucum(spec, column))
            else spec.loinc[0]
        )
        out.resources.append(
            {
                "resourceType": "Observation",
                "id": _id(out.patient_id, name),
                "status": "final",
                "subject": subject,
                "category": [
                    _concept(
                        "vital-signs" if vital else "laboratory",
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                    )
                ],
                "code": _concept(code, LOINC),
                "effectiveDateTime": (reference - timedelta(hours=2)).isoformat(),
                "valueQuantity": {"value": shown, "unit": ucum, "system": UCUM, "code": ucum},
            }
        )


def _primary_ucum(spec: FeatureSource, column: Any) -> str:
    return next(ucum for ucum, unit in spec.units.items() if unit == column.unit)


def _unit_for(spec: FeatureSource, column: Any, value: float, alternate: bool) -> tuple[str, float]:
    """The UCUM code to send and the value in it; an alternate unit inverts the contract's conversion."""
    if alternate:
        for ucum, unit in spec.units.items():
            alt = next((a for a in column.alternate_units if a.unit == unit), None)
            if alt is not None:
                return ucum, round((float(value) - alt.offset) / alt.scale, 6)
    return _primary_ucum(spec, column), float(value)


class FhirStore:
    """Answers the FHIR reads and searches of prefetch templates (`Type/id`, `Type?patient=..&category=..`)."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources

    def search(self, query: str) -> dict[str, Any] | None:
        path, _, params = query.partition("?")
        rtype, _, rid = path.strip("/").partition("/")
        if rid:
            return next((r for r in self.resources if r["resourceType"] == rtype and r["id"] == rid), None)
        filters = dict(parse_qsl(params))
        hits = [r for r in self.resources if r["resourceType"] == rtype and self._matches(r, filters)]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['id'])}", "resource": r} for r in hits],
        }

    @staticmethod
    def _matches(resource: dict[str, Any], filters: dict[str, str]) -> bool:
        for name, wanted in filters.items():
            if name == "patient":
                ref = (resource.get("subject") or resource.get("beneficiary") or {}).get("reference", "")
                if ref != f"Patient/{wanted}":
                    return False
            elif name == "category":
                codes = {c["code"] for cat in resource.get("category", []) for c in cat.get("coding", [])}
                if not codes & set(wanted.split(",")):
                    return False
            elif name == "status" and resource.get("status") not in wanted.split(","):
                return False
        return True


def hook_request(
    hook: str,
    prefetch_templates: dict[str, str],
    synthetic: SyntheticPatient,
    *,
    fhir_server: str = "https://ehr.example.org/fhir",
    omit: tuple[str, ...] = (),
    user_id: str = "Practitioner/example",
) -> dict[str, Any]:
    """A CDS Hooks 2.0 request with the templates' prefetch filled in (keys in `omit` left out)."""
    context = {"userId": user_id, "patientId": synthetic.patient_id, "encounterId": synthetic.encounter_id}
    store = FhirStore(synthetic.resources)
    prefetch = {}
    for key, template in prefetch_templates.items():
        if key in omit:
            continue
        query = fill_prefetch_template(template, context)
        prefetch[key] = store.search(query) if query else None
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_server,
        "fhirAuthorization": {
            "access_token": "synthetic-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "clinops-cds",
        },
        "context": context,
        "prefetch": prefetch,
    }
