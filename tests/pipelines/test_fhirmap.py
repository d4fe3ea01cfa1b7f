"""The FHIR mapping format beside each contract, checked against the contract; the Charlson comorbidity index
(Quan ICD-10) on known codes; the synthetic generator's Charlson conditions."""

from __future__ import annotations

import pytest

from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.contracts.charlson import charlson_index
from pipelines.contracts.fhirmap import FhirMapping, builtin_mapping_path, load_mapping
from pipelines.data.fhir import charlson_codes


@pytest.mark.parametrize("model", ["readmission-risk", "sepsis-warning"])
def test_the_shipped_mappings_agree_with_their_contracts(model: str) -> None:
    assert load_mapping(builtin_mapping_path(model)).check_against(load_contract(builtin_contract_path(model))) == []


@pytest.mark.parametrize(
    ("codes", "index"),
    [
        (["I21.4"], 1),
        (["E11.9", "E11.22"], 2),  # complicated diabetes replaces uncomplicated
        (["C34.1", "C78.00"], 6),  # metastatic replaces any malignancy
        (["K70.3", "K72.10"], 3),  # severe liver replaces mild
        (["I10", "Z87.891"], 0),
        (["B20", "N18.3", "G81.90", "I50.9", "J44.9"], 12),
    ],
)
def test_charlson_index_on_known_codes(codes: list[str], index: int) -> None:
    assert charlson_index(codes) == index


def test_the_generator_builds_every_charlson_index_the_contract_allows() -> None:
    assert all(charlson_index(charlson_codes(i)) == i for i in range(30))


def test_a_mapping_that_disagrees_with_its_contract_is_refused() -> None:
    contract = load_contract(builtin_contract_path("readmission-risk"))
    raw = load_mapping(builtin_mapping_path("readmission-risk")).model_dump()
    raw["features"].pop("sodium")
    raw["features"]["creatinine"]["units"]["mmol/L"] = "mmol/L"
    raw["features"]["payer"]["map"]["9"] = "Private"
    problems = FhirMapping.model_validate(raw).check_against(contract)
    assert any(p.startswith("features.sodium: contract feature not mapped") for p in problems)
    assert any(p.startswith("features.creatinine: units ['mmol/L'] are not declared") for p in problems)
    assert any(p.startswith("features.payer: map must give contract categories") for p in problems)
