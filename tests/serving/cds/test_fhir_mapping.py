"""FHIR R4 -> contract features on generated bundles: every feature read back, unit conversions, missing data,
Charlson on known codes, and the mapping and the CDS config checked against the contract."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from clinops.config import load_from_stack_file
from clinops.models import CdsConfig, fill_prefetch_template
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.contracts.fhirmap import FhirMapping, builtin_mapping_path, load_mapping
from pipelines.data.fhir import resources_for_row
from pipelines.data.sepsis import generate_sepsis
from pipelines.data.synthetic import generate_readmission
from serving.cds.features import FeatureMapper, parse_record
from serving.cds.service import model_services
from tests.conftest import REPO
from tests.serving.cds.conftest import FakeScorer

MODELS = {"readmission-risk": generate_readmission, "sepsis-warning": generate_sepsis}


def _same(expected: object, got: object) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return got is None
    if isinstance(expected, float):
        return got is not None and abs(expected - float(got)) <= 1e-6 * max(1.0, abs(expected))
    return expected == got


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("alternate_units", [False, True])
def test_generated_bundles_map_back_to_the_rows_features(model: str, alternate_units: bool) -> None:
    contract, mapping = load_contract(builtin_contract_path(model)), load_mapping(builtin_mapping_path(model))
    mapper = FeatureMapper(mapping, contract)
    for row in MODELS[model](60, seed=5).to_dict("records"):
        synthetic = resources_for_row(row, mapping, contract, alternate_units=alternate_units)
        record = parse_record(synthetic.resources, synthetic.patient_id, synthetic.encounter_id)
        assert record.unparsable == 0  # every generated resource is valid FHIR (fhir.resources models)
        extraction = mapper.extract(record, synthetic.now)
        wrong = [f for f in contract.feature_columns if not _same(row[f], extraction.features[f])]
        assert wrong == [] and extraction.usable, (wrong, extraction.missing, extraction.outside)


def test_alternate_units_are_converted_to_the_contracts() -> None:
    contract, mapping = (
        load_contract(builtin_contract_path("sepsis-warning")),
        load_mapping(builtin_mapping_path("sepsis-warning")),
    )
    row = generate_sepsis(3, seed=1).to_dict("records")[0] | {"temperature": 38.5, "creatinine": 1.2}
    synthetic = resources_for_row(row, mapping, contract, alternate_units=True)
    sent = {
        r["code"]["coding"][0]["code"]: r["valueQuantity"]
        for r in synthetic.resources
        if r["resourceType"] == "Observation"
    }
    assert sent["8310-5"]["code"] == "[degF]" and sent["8310-5"]["value"] == pytest.approx(101.3, abs=0.05)
    assert sent["14682-9"]["code"] == "umol/L" and sent["14682-9"]["value"] == pytest.approx(106.1, abs=0.1)
    features = (
        FeatureMapper(mapping, contract)
        .extract(parse_record(synthetic.resources, synthetic.patient_id, synthetic.encounter_id), synthetic.now)
        .features
    )
    assert features["temperature"] == pytest.approx(38.5, abs=1e-3) and features["creatinine"] == pytest.approx(
        1.2, abs=1e-3
    )


def test_missing_resources_leave_required_features_missing_and_optional_ones_empty() -> None:
    model = "readmission-risk"
    contract, mapping = load_contract(builtin_contract_path(model)), load_mapping(builtin_mapping_path(model))
    row = generate_readmission(3, seed=2).to_dict("records")[0]
    synthetic = resources_for_row(row, mapping, contract)
    kept = [r for r in synthetic.resources if r["resourceType"] in ("Patient", "Encounter")]
    extraction = FeatureMapper(mapping, contract).extract(
        parse_record(kept, synthetic.patient_id, synthetic.encounter_id), synthetic.now
    )
    assert extraction.missing == ["payer"]  # Coverage absent; labs absent are allowed missing (max_missing > 0)
    assert extraction.features["hba1c"] is None and extraction.features["num_medications"] == 0
    nothing = FeatureMapper(mapping, contract).extract(parse_record([], "p", "e"), synthetic.now)
    assert {"age", "sex", "length_of_stay_days", "admission_type"} <= set(nothing.missing)


def test_an_unparsable_resource_is_left_out_not_half_read() -> None:
    record = parse_record([{"resourceType": "Patient", "id": "p", "birthDate": "not-a-date"}], "p", None)
    assert record.unparsable == 1 and record.patient is None


def test_age_is_top_coded_at_the_contracts_maximum() -> None:
    model = "readmission-risk"
    contract, mapping = load_contract(builtin_contract_path(model)), load_mapping(builtin_mapping_path(model))
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1920-01-01", "gender": "female"}
    features = (
        FeatureMapper(mapping, contract)
        .extract(parse_record([patient], "p", None), datetime(2025, 1, 1, tzinfo=UTC))
        .features
    )
    assert features["age"] == 90 and features["sex"] == "F"


def test_the_mapper_refuses_a_mapping_that_disagrees_with_its_contract() -> None:
    contract = load_contract(builtin_contract_path("readmission-risk"))
    raw = load_mapping(builtin_mapping_path("readmission-risk")).model_dump()
    raw["features"].pop("sodium")
    with pytest.raises(ValueError, match=r"features\.sodium: contract feature not mapped"):
        FeatureMapper(FhirMapping.model_validate(raw), contract)


def test_every_prefetch_reads_what_its_mapping_needs() -> None:
    config = load_from_stack_file("dev", REPO)
    scorers = {m.name: FakeScorer(m.name) for m in config.models}
    assert [s.id for s in model_services(config.models, scorers)] == ["readmission-risk", "sepsis-warning"]
    model = config.models[0]
    narrowed = model.model_copy(
        update={"cds": model.cds.model_copy(update={"prefetch": {"patient": "Patient/{{context.patientId}}"}})}
    )
    with pytest.raises(ValueError, match=r"cds.prefetch reads no \['Condition', 'Coverage'"):
        model_services([narrowed], scorers)


def test_cds_config_rejects_tokens_the_hook_lacks_and_unordered_bands() -> None:
    base = load_from_stack_file("dev", REPO).models[0].cds.model_dump(by_alias=True)
    with pytest.raises(ValidationError, match="does not provide"):
        CdsConfig.model_validate(base | {"prefetch": {"orders": "MedicationRequest?encounter={{context.draftOrders}}"}})
    with pytest.raises(ValidationError, match="bands must start at minScore 0"):
        CdsConfig.model_validate(
            base | {"bands": [{"label": "high", "minScore": 0.4}, {"label": "low", "minScore": 0.0}]}
        )
    assert fill_prefetch_template("Patient/{{context.patientId}}", {"patientId": "p1"}) == "Patient/p1"
    assert fill_prefetch_template("Encounter/{{context.encounterId}}", {"patientId": "p1"}) is None
