"""What the platform knows about each configured model: its contract, its intended use for the model card,
and (for the demo and tests) a synthetic data generator. A model without a profile still runs with any CSV and
contract; its card then states the contract's description as the intended use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.contracts import Contract, builtin_contract_path
from pipelines.data.injections import Injections
from pipelines.data.sepsis import generate_sepsis
from pipelines.data.synthetic import generate_readmission

Generator = Callable[..., pd.DataFrame]

GENERIC_LIMITATIONS = (
    "Measured on retrospective data from the sources in the training data only; performance can differ at "
    "other sites, in other populations and after changes in practice, coding or lab methods.",
    "Probabilities are calibrated to the outcome rate of the training population.",
    "Supports prioritisation by clinicians; it does not diagnose and does not replace clinical judgement.",
)


@dataclass(frozen=True)
class ModelProfile:
    name: str
    intended_use: str
    out_of_scope: tuple[str, ...]
    limitations: tuple[str, ...] = GENERIC_LIMITATIONS
    risk_rating: str = "High"  # clinical decision support: SageMaker model card rating
    generator: Generator | None = field(default=None, compare=False)

    @property
    def contract_path(self) -> Path:
        return builtin_contract_path(self.name)


PROFILES: dict[str, ModelProfile] = {
    "readmission-risk": ModelProfile(
        name="readmission-risk",
        intended_use="Estimate, at discharge of an adult inpatient, the probability of an unplanned readmission "
        "within 30 days, to prioritise transitional-care outreach (follow-up calls, early clinic visits, "
        "medication reconciliation).",
        out_of_scope=(
            "Paediatric or obstetric admissions",
            "Decisions to discharge or to deny care or coverage",
            "Use as a measure of hospital or clinician quality",
        ),
        generator=generate_readmission,
    ),
    "sepsis-warning": ModelProfile(
        name="sepsis-warning",
        intended_use="Estimate, from the latest vitals and labs of an adult inpatient, the probability that "
        "sepsis criteria are met within the next 12 hours, to prompt a bedside assessment by the care team.",
        out_of_scope=(
            "Emergency department triage before admission",
            "Paediatric or neonatal patients",
            "Starting or withholding antibiotics without clinical assessment",
        ),
        generator=generate_sepsis,
    ),
}


def profile_for(name: str, contract: Contract) -> ModelProfile:
    if name in PROFILES:
        return PROFILES[name]
    return ModelProfile(
        name=name, intended_use=contract.description, out_of_scope=("Any use not described by the intended use",)
    )


def synthetic_table(
    name: str, rows: int, seed: int, end_date: date, injections: Injections | None = None
) -> pd.DataFrame:
    profile = PROFILES.get(name)
    if profile is None or profile.generator is None:
        known = ", ".join(n for n, p in PROFILES.items() if p.generator)
        raise ValueError(f"no synthetic generator for model '{name}'; pass --data CSV (generators: {known})")
    return profile.generator(rows, seed, end_date=end_date, injections=injections)
