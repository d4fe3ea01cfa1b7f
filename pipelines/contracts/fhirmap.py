"""FHIR -> contract features: the declarative mapping that sits beside a contract (`<model>.fhir.yaml`).

Each feature the contract declares names one source:

    observation        newest Observation with one of `loinc`; `units` maps the UCUM code it carries to a unit
                       the contract declares (its `unit` or an `alternate_units` entry, whose scale/offset convert)
    age                Patient.birthDate to the encounter's end (its start or today while it is open), whole years
    gender             Patient.gender through `map`
    length-of-stay     Encounter.period in whole days (a same-day stay counts as 1)
    hours-since-admission  Encounter.period.start to now
    prior-encounters   Encounters of `classes` that ended in the `within_days` before this one started
    charlson           Charlson comorbidity index of the patient's ICD-10 Conditions (Quan 2005 coding)
    count              how many resources of `resource` the prefetch holds (e.g. active MedicationRequests)
    coding             the code of `resource`.`element` (a dotted path to a CodeableConcept) through `map`

The mapping is checked against the contract when the CDS service is built (`check_against`): every contract
feature mapped, categories and units the contract knows, numeric sources only on numeric features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.contracts.loader import BUILTIN_DIR
from pipelines.contracts.model import Contract
from pipelines.errors import InputError

Source = Literal[
    "observation",
    "age",
    "gender",
    "length-of-stay",
    "hours-since-admission",
    "prior-encounters",
    "charlson",
    "count",
    "coding",
]
CATEGORY_SOURCES = frozenset({"gender", "coding"})
RESOURCE_OF_SOURCE = {
    "observation": "Observation",
    "age": "Patient",
    "gender": "Patient",
    "length-of-stay": "Encounter",
    "hours-since-admission": "Encounter",
    "prior-encounters": "Encounter",
    "charlson": "Condition",
}


class FeatureSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    loinc: list[str] = Field(default_factory=list)
    units: dict[str, str] = Field(default_factory=dict, description="UCUM code -> contract unit")
    resource: str | None = None
    element: str | None = None
    map: dict[str, str] = Field(default_factory=dict, description="FHIR code -> contract category")
    classes: list[str] = Field(default_factory=list, description="Encounter.class codes counted")
    within_days: int | None = Field(default=None, ge=1, le=3650)

    @property
    def resource_type(self) -> str:
        return self.resource or RESOURCE_OF_SOURCE[self.source]


class FhirMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    features: dict[str, FeatureSource]

    @property
    def resource_types(self) -> set[str]:
        return {spec.resource_type for spec in self.features.values()}

    def check_against(self, contract: Contract) -> list[str]:
        """Every way this mapping disagrees with the contract, one line each naming the feature and the fix."""
        problems: list[str] = []
        if self.model != contract.name:
            problems.append(f"model: '{self.model}' maps contract '{contract.name}'; fix: use the contract's name")
        for name in contract.feature_columns:
            if name not in self.features:
                problems.append(f"features.{name}: contract feature not mapped; fix: name its FHIR source")
        for name, spec in self.features.items():
            column = contract.columns.get(name)
            where = f"features.{name}"
            if column is None or not contract.is_feature(name):
                problems.append(f"{where}: not a feature of contract {contract.name}; fix: remove it")
                continue
            is_category = column.dtype == "category"
            if is_category != (spec.source in CATEGORY_SOURCES):
                problems.append(f"{where}: source {spec.source} cannot fill a {column.dtype} feature")
            if is_category:
                unknown = sorted(set(spec.map.values()) - set(column.categories or []))
                if unknown or not spec.map:
                    problems.append(f"{where}: map must give contract categories (unknown: {unknown})")
            known_units = {u for u in (column.unit, *(alt.unit for alt in column.alternate_units)) if u is not None}
            if spec.source == "observation":
                if not spec.loinc or not spec.units:
                    problems.append(f"{where}: an observation needs loinc codes and units")
                unknown = sorted(set(spec.units.values()) - known_units)
                if unknown:
                    problems.append(
                        f"{where}: units {unknown} are not declared by the contract; fix: use {sorted(known_units)} "
                        "or add an alternate_units entry with its conversion"
                    )
            if spec.source in ("count", "coding") and not spec.resource:
                problems.append(f"{where}: source {spec.source} needs resource")
            if spec.source == "coding" and not spec.element:
                problems.append(f"{where}: source coding needs element (e.g. hospitalization.dischargeDisposition)")
            if spec.source == "prior-encounters" and (not spec.classes or spec.within_days is None):
                problems.append(f"{where}: prior-encounters needs classes and within_days")
        return problems


def builtin_mapping_path(model_name: str) -> Path:
    return BUILTIN_DIR / f"{model_name}.fhir.yaml"


def load_mapping(path: str | Path) -> FhirMapping:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"FHIR mapping {path} cannot be read: {exc}") from None
    try:
        return FhirMapping.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  - {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InputError(f"FHIR mapping {path} does not match the mapping format:\n" + "\n".join(lines)) from None
