"""The contract format, its loader, and the validator's report (counts, examples, never PHI)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.contracts import builtin_contract_path, contract_yaml, load_contract
from pipelines.contracts.loader import parse_contract
from pipelines.contracts.validate import safe_example, tokenize, validate_frame
from pipelines.data.synthetic import Injections, generate_readmission
from pipelines.errors import InputError

AS_OF = date(2025, 7, 1)
KEY = b"test-key"


@pytest.fixture(scope="module")
def contract():
    return load_contract(builtin_contract_path("readmission-risk"))


def as_extract(table: pd.DataFrame, contract) -> pd.DataFrame:
    """What `read_raw_table` hands the validator: text columns as strings, numbers parsed."""
    frame = table.copy()
    for name in contract.text_columns & set(frame.columns):
        frame[name] = frame[name].astype("string").astype(object).where(frame[name].notna(), None)
    return frame


def check(table: pd.DataFrame, contract, as_of: date = AS_OF):
    return validate_frame(as_extract(table, contract), contract, as_of=as_of, token_key=KEY)


@pytest.mark.parametrize("name", ["readmission-risk", "sepsis-warning"])
def test_builtin_contracts_load_and_round_trip(name: str) -> None:
    contract = load_contract(builtin_contract_path(name))
    assert contract.name == name and contract.feature_columns and contract.sensitive_columns
    assert set(contract.phi_columns).isdisjoint(contract.feature_columns)
    assert parse_contract(contract_yaml(contract)) == contract


def test_readmission_contract_keeps_identifiers_and_race_out_of_the_model(contract) -> None:
    assert set(contract.phi_columns) == {"mrn", "patient_name", "date_of_birth", "discharge_date"}
    assert "race_ethnicity" in contract.sensitive_columns and "race_ethnicity" not in contract.feature_columns
    assert contract.retained_columns[0] == "mrn"  # tokenized, for the patient-grouped split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: xyz\nversion: [1,\n", "not valid YAML at line"),
        ("- just a list\n", "must be a YAML mapping"),
        (
            "name: Readmission Risk\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: y}\ncolumns: {}\n",
            "is not a model slug",
        ),
        (
            "name: xyz\nversion: '1.0'\ndescription: long enough text\nlabel: {column: y}\ncolumns: {}\n",
            "version '1.0' is not MAJOR.MINOR.PATCH",
        ),
        (
            "name: xyz\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: y}\n"
            "columns: {y: {dtype: integer}, a: {dtype: float, sensitive: true}}\n",
            "needs bins",
        ),
        (
            "name: xyz\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: y}\n"
            "columns: {y: {dtype: integer}, mrn: {dtype: string, phi: true, feature: true}}\n",
            "PHI column can never",
        ),
        (
            "name: xyz\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: z}\n"
            "columns: {y: {dtype: integer}}\n",
            "label column 'z' is not declared",
        ),
        (
            "name: xyz\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: y}\n"
            "columns: {y: {dtype: integer}, a: {dtype: float}}\n",
            "at least one sensitive attribute",
        ),
        (
            "name: xyz\nversion: 1.0.0\ndescription: long enough text\nlabel: {column: y}\n"
            "columns: {y: {dtype: integer, maxmissing: 0.1}}\n",
            "columns.y.maxmissing: unknown key",
        ),
    ],
)
def test_bad_contracts_fail_with_the_key_and_the_reason(text: str, expected: str) -> None:
    with pytest.raises(InputError, match=r"does not match|not valid YAML|must be a YAML") as caught:
        parse_contract(text, source="c.yaml")
    assert expected in str(caught.value)


@pytest.mark.parametrize("name", ["readmission-risk", "sepsis-warning"])
def test_the_fast_yaml_loader_reads_contracts_as_the_pure_python_one_does(name: str) -> None:
    from pipelines.contracts import loader

    text = builtin_contract_path(name).read_text(encoding="utf-8")
    assert loader._YAML_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    assert yaml.load(text, Loader=loader._YAML_LOADER) == yaml.safe_load(text)


def test_without_libyaml_contracts_still_load_and_bad_yaml_names_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.contracts import loader

    monkeypatch.setattr(loader, "_YAML_LOADER", yaml.SafeLoader)
    assert load_contract(builtin_contract_path("readmission-risk")).name == "readmission-risk"
    with pytest.raises(InputError, match="not valid YAML at line 3"):
        parse_contract("name: xyz\nversion: [1,\n", source="c.yaml")


def test_missing_contract_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")


def test_clean_extract_passes_and_leaves_no_identifier(contract) -> None:
    raw = generate_readmission(600, seed=1)
    report, clean = check(raw, contract)
    assert report.passed, report.to_markdown()
    assert clean is not None and list(clean.columns) == contract.retained_columns
    assert set(clean["mrn"].dropna().str[:4]) == {"tok_"}
    assert not set(raw["mrn"]) & set(clean["mrn"])
    assert "patient_name" not in clean and "date_of_birth" not in clean and "discharge_date" not in clean


def test_unit_change_is_a_range_violation_that_names_the_likely_unit(contract) -> None:
    report, clean = check(generate_readmission(1000, seed=2, injections=Injections(unit_change="creatinine")), contract)
    assert clean is None and report.status == "violated"
    (issue,) = report.issues
    assert (issue.column, issue.check) == ("creatinine", "range")
    measured_recently = generate_readmission(1000, seed=2)["creatinine"].iloc[700:].notna().sum()
    assert issue.count == measured_recently  # every measured value of the most recent 30% of admissions
    assert "umol/L" in issue.message and issue.examples


def test_retyped_column_reports_counts_and_examples(contract) -> None:
    report, _ = check(generate_readmission(1000, seed=3, injections=Injections(schema_break="retype")), contract)
    (issue,) = report.issues
    assert (issue.column, issue.check) == ("prior_admissions_12m", "dtype")
    assert set(issue.examples) <= {"1-2", "3-5", "6+"} and issue.count > 0


def test_renamed_column_is_missing_and_the_new_name_is_suggested(contract) -> None:
    report, _ = check(generate_readmission(500, seed=4, injections=Injections(schema_break="rename")), contract)
    checks = {(i.column, i.check) for i in report.issues}
    assert checks == {("length_of_stay_days", "missing_column"), ("los_days", "unexpected_column")}
    missing = next(i for i in report.issues if i.check == "missing_column")
    assert "'los_days'" in missing.message


def test_stale_extract_and_future_dates_fail_freshness(contract) -> None:
    raw = generate_readmission(300, seed=5, end_date=date(2024, 1, 31))
    report, _ = check(raw, contract)
    assert any(i.check == "freshness" and "days old" in i.message for i in report.issues)
    report, _ = check(generate_readmission(300, seed=5, end_date=date(2025, 12, 31)), contract)
    assert any(i.check == "freshness" and "after the run date" in i.message for i in report.issues)


def test_label_problems(contract) -> None:
    raw = generate_readmission(300, seed=6)
    raw["readmitted_30d"] = raw["readmitted_30d"].astype(object)
    raw.loc[:4, "readmitted_30d"] = "maybe"
    report, _ = check(raw, contract)
    assert any(i.check == "label" and i.count == 5 and "maybe" in i.examples for i in report.issues)
    raw = generate_readmission(300, seed=6).assign(readmitted_30d=0)
    report, clean = check(raw, contract)
    assert report.status == "unusable" and clean is None
    assert "one class" in report.reasons()[0]


def test_missingness_and_categories(contract) -> None:
    raw = generate_readmission(400, seed=7)
    already_missing = raw.loc[100:, "creatinine"].isna().sum()
    raw.loc[:99, "creatinine"] = None  # over 25% missing, contract allows 10%
    raw.loc[:2, "payer"] = "Medicare HMO"
    report, _ = check(raw, contract)
    by_check = {i.check: i for i in report.issues}
    assert by_check["missing"].column == "creatinine" and by_check["missing"].count == 100 + already_missing
    assert by_check["category"].examples == ("Medicare HMO",)


def test_phi_values_never_appear_in_the_report(contract) -> None:
    raw = generate_readmission(300, seed=8)
    raw.loc[:9, "date_of_birth"] = raw.loc[:9, "patient_name"]  # garbage in a PHI column
    raw["ssn"] = "123-45-6789"  # an undeclared identifier column
    raw.loc[:3, "sex"] = raw.loc[:3, "mrn"]  # an identifier leaking into a declared column
    report, _ = check(raw, contract)
    text = json.dumps(report.to_dict()) + report.to_markdown()
    leaked = set(raw["patient_name"][:10]) | set(raw["mrn"][:4]) | {"123-45-6789"}
    assert not [v for v in leaked if v in text]
    assert any(i.column == "date_of_birth" and "withheld" in i.message for i in report.issues)
    assert any(i.column == "ssn" and i.check == "unexpected_column" and not i.examples for i in report.issues)


@pytest.fixture(scope="module")
def small_extract(contract) -> pd.DataFrame:
    return as_extract(generate_readmission(50, seed=9), contract)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(identifier=st.from_regex(r"[A-Z]{1,4}-?[0-9]{4,10}", fullmatch=True))
def test_no_identifier_shape_survives_into_examples(contract, small_extract, identifier: str) -> None:
    """Whatever lands in a PHI column (here: the MRN and date-of-birth columns), the report shows counts only."""
    raw = small_extract.assign(mrn=identifier, date_of_birth=identifier)
    report, _ = validate_frame(raw, contract, as_of=AS_OF, token_key=KEY)
    assert identifier not in json.dumps(report.to_dict()) + report.to_markdown()


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("MRN12345678", True),
        ("123-45-6789", True),
        ("jane@example.org", True),
        ("1957-03-02", True),
        ("Maria Lopez", True),
        ("(555) 123-4567", True),
        ("Home health", False),
        ("3-5", False),
        ("42.5", False),
    ],
)
def test_safe_example_masks_identifier_shapes(value: str, masked: bool) -> None:
    assert (safe_example(value) != value) is masked


def test_tokens_are_keyed_stable_and_unlinkable_across_keys() -> None:
    values = pd.Series(["MRN1", "MRN2", "MRN1", None])
    first, again, other = tokenize(values, b"k1"), tokenize(values, b"k1"), tokenize(values, b"k2")
    assert first.tolist() == again.tolist() and first[0] == first[2] and first[0] != first[1]
    assert first[3] is None and not set(first.dropna()) & set(other.dropna())


@pytest.mark.parametrize(("column", "unit"), [(None, None), ("lactate", "mg/dL"), ("temperature", "degF")])
def test_sepsis_contract_accepts_clean_data_and_names_unit_switches(column: str | None, unit: str | None) -> None:
    from pipelines.data.sepsis import generate_sepsis

    sepsis = load_contract(builtin_contract_path("sepsis-warning"))
    raw = generate_sepsis(900, seed=3, end_date=AS_OF, injections=Injections(unit_change=column))
    report, clean = check(raw, sepsis)
    if column is None:
        assert report.passed and clean is not None and clean["encounter_id"].str.startswith("tok_").all()
        return
    (issue,) = report.issues
    assert (issue.column, issue.check) == (column, "range") and unit in issue.message
