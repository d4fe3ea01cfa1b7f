"""FHIR R4 resources -> the model's contract features, by the declarative mapping beside its contract.

Resources are parsed with `fhir.resources` (R4B models, wire-compatible with R4 for every resource read
here); a resource that does not parse is left out and counted, never half-read. The result says which
features are missing and which fall outside the contract - by feature name and rule, never by value, so
the reasons can go on a card and into a log.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from pipelines.contracts.charlson import charlson_index
from pipelines.contracts.fhirmap import FeatureSource, FhirMapping
from pipelines.contracts.model import ColumnSpec, Contract

LOINC_SYSTEMS = frozenset({"http://loinc.org"})
ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"})
USABLE_OBSERVATION = frozenset({"final", "amended", "corrected"})
DISCARDED_CONDITION = frozenset({"refuted", "entered-in-error"})


@dataclass
class PatientRecord:
    """The hook's FHIR data, parsed: the patient, the current encounter and everything else by type."""

    patient: Any | None
    encounter: Any | None
    by_type: dict[str, list[Any]]
    unparsable: int = 0


@dataclass
class Extraction:
    features: dict[str, Any]
    missing: list[str] = field(default_factory=list)  # required features without a value
    outside: list[str] = field(default_factory=list)  # "feature: rule" lines, no values

    @property
    def usable(self) -> bool:
        return not self.missing and not self.outside


def _resources(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten resources and searchset Bundles into resources."""
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("resourceType") == "Bundle":
            out.extend(e["resource"] for e in item.get("entry") or [] if isinstance(e, dict) and "resource" in e)
        elif "resourceType" in item:
            out.append(item)
    return out


def parse_record(items: list[dict[str, Any]], patient_id: str, encounter_id: str | None) -> PatientRecord:
    by_type: dict[str, list[Any]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    unparsable = 0
    for raw in _resources(items):
        key = (str(raw.get("resourceType")), str(raw.get("id")))
        if raw.get("id") and key in seen:  # the same resource from two prefetch keys counts once
            continue
        seen.add(key)
        try:
            model = get_fhir_model_class(key[0]).model_validate(raw)
        except (KeyError, ValueError, ValidationError):
            unparsable += 1
            continue
        by_type[key[0]].append(model)
    patient = next((p for p in by_type.get("Patient", []) if p.id == patient_id), None)
    encounter = next((e for e in by_type.get("Encounter", []) if e.id == encounter_id), None) if encounter_id else None
    return PatientRecord(patient, encounter, dict(by_type), unparsable)


def warm_up(resource_types: set[str]) -> None:
    """Import and build the FHIR models once at start-up: the first parse of a type costs hundreds of ms
    (module import, pydantic schema build), which would otherwise land on the first clinician's deadline."""
    for rtype in sorted(resource_types):
        with contextlib.suppress(KeyError, ValueError, ValidationError):  # required elements: still built
            get_fhir_model_class(rtype).model_validate({"resourceType": rtype, "id": "warm-up"})


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _codes(concept: Any) -> list[str]:
    concepts = concept if isinstance(concept, list) else [concept]
    out: list[str] = []
    for item in concepts:
        codings = getattr(item, "coding", None)
        if codings is None and getattr(item, "code", None) is not None:
            codings = [item]
        out.extend(c.code for c in codings or [] if getattr(c, "code", None))
    return out


class FeatureMapper:
    """One model's mapping, checked against its contract once; `extract` per request."""

    def __init__(self, mapping: FhirMapping, contract: Contract) -> None:
        problems = mapping.check_against(contract)
        if problems:
            raise ValueError(
                f"FHIR mapping of {mapping.model} disagrees with its contract:\n  " + "\n  ".join(problems)
            )
        self.mapping, self.contract = mapping, contract
        warm_up(mapping.resource_types | {"Patient", "Encounter", "Bundle"})

    def extract(self, record: PatientRecord, now: datetime) -> Extraction:
        features: dict[str, Any] = {}
        outside: list[str] = []
        for name, spec in self.mapping.features.items():
            try:
                value = self._value(name, spec, record, now)
            except _Outside as exc:
                outside.append(f"{name}: {exc}")
                continue
            features[name] = value
        result = Extraction(features, outside=outside)
        for name in self.contract.feature_columns:
            column = self.contract.columns[name]
            value = features.get(name)
            if value is None:
                features[name] = None
                if column.required and column.max_missing == 0.0 and not any(o.startswith(f"{name}:") for o in outside):
                    result.missing.append(name)
                continue
            problem = _check(column, value)
            if problem:
                result.outside.append(f"{name}: {problem}")
        return result

    def _value(self, name: str, spec: FeatureSource, record: PatientRecord, now: datetime) -> Any:
        enc, patient = record.encounter, record.patient
        start = _instant(enc.period.start) if enc is not None and enc.period is not None else None
        end = _instant(enc.period.end) if enc is not None and enc.period is not None else None
        source = spec.source
        if source == "age":
            birth = getattr(patient, "birthDate", None)
            if not isinstance(birth, date):
                return None
            at = (end or now).date()
            years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
            top = self.contract.columns[name].range
            return min(years, int(top[1])) if top else years  # Safe Harbor top-coding, as in training
        if source == "gender":
            gender = getattr(patient, "gender", None)
            if gender is None:
                return None
            if gender not in spec.map:
                raise _Outside("gender code not in the mapping")
            return spec.map[gender]
        if source == "length-of-stay":
            if start is None:
                return None
            return max(1, ((end or now).date() - start.date()).days)
        if source == "hours-since-admission":
            return None if start is None else round((now - start).total_seconds() / 3600, 2)
        if source == "prior-encounters":
            if start is None:
                return None
            window = float(spec.within_days or 0) * 86400
            count = 0
            for other in record.by_type.get("Encounter", []):
                if other is enc or getattr(other.class_fhir, "code", None) not in spec.classes:
                    continue
                when = _instant(other.period.end or other.period.start) if other.period else None
                if when is not None and 0 < (start - when).total_seconds() <= window:
                    count += 1
            return count
        if source == "charlson":
            codes = [
                coding.code
                for cond in record.by_type.get("Condition", [])
                if not (set(_codes(cond.verificationStatus)) & DISCARDED_CONDITION)
                for coding in (cond.code.coding if cond.code else None) or []
                if coding.system in ICD10_SYSTEMS and coding.code
            ]
            return charlson_index(codes)
        if source == "count":
            return len(record.by_type.get(spec.resource_type, []))
        if source == "coding":
            holder = (
                enc
                if spec.resource_type == "Encounter"
                else next(iter(record.by_type.get(spec.resource_type, [])), None)
            )
            value: Any = holder
            for part in (spec.element or "").split("."):
                value = getattr(value, part, None) if value is not None else None
            codes = _codes(value) if value is not None else []
            if not codes:
                return None
            mapped = [spec.map[c] for c in codes if c in spec.map]
            if not mapped:
                raise _Outside(f"{spec.resource_type}.{spec.element} code not in the mapping")
            return mapped[0]
        if source == "observation":
            return self._observation(name, spec, record)
        raise AssertionError(source)

    def _observation(self, name: str, spec: FeatureSource, record: PatientRecord) -> float | None:
        wanted = set(spec.loinc)
        newest: tuple[datetime, Any] | None = None
        for obs in record.by_type.get("Observation", []):
            if obs.status not in USABLE_OBSERVATION or obs.valueQuantity is None or obs.valueQuantity.value is None:
                continue
            if not any(
                c.code in wanted and (c.system in LOINC_SYSTEMS or c.system is None) for c in obs.code.coding or []
            ):
                continue
            when = (
                _instant(obs.effectiveDateTime)
                or _instant(getattr(obs, "issued", None))
                or datetime.min.replace(tzinfo=UTC)
            )
            if newest is None or when > newest[0]:
                newest = (when, obs)
        if newest is None:
            return None
        quantity = newest[1].valueQuantity
        ucum = quantity.code or quantity.unit
        unit = spec.units.get(ucum or "")
        if unit is None:
            raise _Outside(f"unit {ucum!r} has no conversion to the contract's {self.contract.columns[name].unit}")
        column = self.contract.columns[name]
        value = float(quantity.value)
        if unit != column.unit:
            alt = next(a for a in column.alternate_units if a.unit == unit)
            value = value * alt.scale + alt.offset
        return value


class _Outside(Exception):
    """The data is there but the contract cannot take it (a code or unit the mapping does not know)."""


def _check(column: ColumnSpec, value: Any) -> str | None:
    """The contract rule a single value breaks, named without the value."""
    if column.dtype == "category":
        return None if value in (column.categories or []) else "not one of the contract's categories"
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if column.range is not None and not column.range[0] <= float(value) <= column.range[1]:
        low, high = column.range
        return f"outside the contract range [{low:g}, {high:g}]" + (f" {column.unit}" if column.unit else "")
    return None
