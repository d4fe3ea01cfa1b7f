"""The whole pipeline in process: the happy path, each injected defect stopped by the right step, bad inputs,
the regression gate against an approved model, and identifiers kept out of MLflow, logs and the card."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from pipelines import tracking
from pipelines.data.injections import Injections, LabelBias
from pipelines.data.synthetic import generate_readmission
from pipelines.errors import InputError
from pipelines.local import run_local
from pipelines.settings import GateSettings, PipelineSettings, TrainingSettings
from pipelines.steps.register import APPROVAL_TAG
from tests.pipelines.conftest import FIXED_CLOCK, fixed_clock, small_data_settings

HONEST_ROWS = 8_000
IDENTIFIER_SHAPES = {
    "mrn": r"MRN\d{8}",
    "patient_name": r"[A-Z][a-z]+ [A-Z][a-z]+",
    "date_of_birth": r"\d{4}-\d{2}-\d{2}",
    "discharge_date": r"\d{4}-\d{2}-\d{2}",
}


def _mlflow_text(out_dir: Path) -> str:
    """Everything MLflow stored, as text: every table of the sqlite store and every artifact file."""
    database = out_dir / "mlflow" / "mlflow.db"
    with sqlite3.connect(database) as connection:
        tables = [t for (t,) in connection.execute("select name from sqlite_master where type = 'table'")]
        rows = [repr(connection.execute(f"select * from {t}").fetchall()) for t in tables]
    files = [p.read_bytes().decode("latin-1") for p in (out_dir / "mlflow" / "artifacts").rglob("*") if p.is_file()]
    return "\n".join(rows + files)


def test_honest_run_registers_and_identifiers_never_leave_validation(out_dir: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    result = run_local(out_dir=out_dir, rows=HONEST_ROWS, seed=7, clock=fixed_clock, settings=small_data_settings())
    assert (result.verdict, result.exit_code, result.stopped_at) == ("PendingManualApproval", 0, None)
    assert set(result.timings) == {
        "validate",
        "split",
        "train",
        "evaluate",
        "fairness",
        "decide",
        "card",
        "track",
        "register",
    }
    assert result.evaluation["candidate"]["auc"] > 0.72

    client = tracking.client(result.tracking_uri)
    version = client.get_model_version("readmission-risk", result.registered_version)
    assert version.tags[APPROVAL_TAG] == "PendingManualApproval"
    assert version.tags["contract_version"] == "1.0.0" and float(version.tags["auc"]) > 0.72
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["verdict"] == "PendingManualApproval" and run.data.params["contract.version"] == "1.0.0"
    assert run.data.tags["dataset_sha256"].startswith("sha256:") and "test.candidate.auc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert artifacts >= {"card", "evaluation", "fairness", "decision", "report", "bundle"}
    import mlflow.models

    with tracking.scoped(result.tracking_uri):
        signature = mlflow.models.get_model_info(f"models:/readmission-risk/{result.registered_version}").signature
    assert signature.inputs.input_names() == result.contract.feature_columns

    card = result.card_path.read_text()
    assert "Approval status: PendingManualApproval" in card and "## Fairness" in card

    # Identifiers: every MRN, name and date of birth in the input must be absent from everything downstream.
    # (Scanned by shape, then matched against the input's values: one pass over the text, not one per value.)
    extract = pd.read_csv(next((result.run_dir / "input").glob("*.csv")), dtype=str)
    stored = _mlflow_text(out_dir)
    written = "\n".join(
        p.read_bytes().decode("latin-1") for p in result.run_dir.rglob("*") if p.is_file() and "input" not in p.parts
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in (("MLflow", stored), ("run files", written), ("logs", logged), ("card", card)):
        for column, shape in IDENTIFIER_SHAPES.items():
            values = set(extract[column]) - {FIXED_CLOCK.date().isoformat()}  # the run date is in the card by design
            leaked = set(re.findall(shape, text)) & values
            assert not leaked, f"{len(leaked)} values of {column} in {where}, e.g. {sorted(leaked)[:3]}"
    assert re.search(r"MRN\d{8}", stored + written + logged) is None


@pytest.mark.parametrize(
    ("injection", "column", "check", "phrase"),
    [
        (Injections(unit_change="creatinine"), "creatinine", "range", "umol/L"),
        (Injections(unit_change="hba1c"), "hba1c", "range", "mmol/mol"),
        (Injections(schema_break="rename"), "length_of_stay_days", "missing_column", "los_days"),
        (Injections(schema_break="retype"), "prior_admissions_12m", "dtype", "integer"),
    ],
)
def test_drift_and_schema_breaks_stop_at_validation(
    out_dir: Path, injection: Injections, column: str, check: str, phrase: str
) -> None:
    result = run_local(out_dir=out_dir, rows=1500, clock=fixed_clock, injections=injection)
    assert (result.verdict, result.exit_code, result.stopped_at) == ("ContractViolated", 1, "validate")
    assert any(i.column == column and i.check == check for i in result.contract_report.issues)
    assert any(phrase in r for r in result.reasons)
    assert result.model_dir is None and result.registered_version is None and result.evaluation is None
    assert (result.run_dir / "report" / "contract-report.md").is_file()
    run = tracking.client(result.tracking_uri).get_run(result.mlflow_run_id)  # the stopped run is recorded too
    assert run.data.tags["verdict"] == "ContractViolated" and run.data.tags["stopped_at"] == "validate"
    assert not tracking.client(result.tracking_uri).search_registered_models()


def test_label_bias_against_a_subgroup_stops_at_the_fairness_gate(out_dir: Path) -> None:
    bias = Injections(label_bias=LabelBias(column="race_ethnicity", group="Black", strength=1.0))
    result = run_local(
        out_dir=out_dir,
        rows=6_000,
        seed=3,
        clock=fixed_clock,
        injections=bias,
        settings=PipelineSettings(gate=GateSettings(min_subgroup_size=50)),
    )
    assert (result.verdict, result.exit_code, result.stopped_at) == ("Rejected", 1, "decide")
    race = result.fairness["attributes"]["race_ethnicity"]
    assert race["gaps"]["auc"]["lowest_group"] == "Black" and race["gaps"]["auc"]["value"] > 0.10
    assert any(r.startswith("race_ethnicity: AUC gap") for r in result.reasons)
    assert result.registered_version is None
    assert "Approval status: Not registered (Rejected)" in result.card_path.read_text()


def test_regression_against_the_approved_model_is_rejected(out_dir: Path) -> None:
    lenient = GateSettings(
        min_auc=0.5,
        max_subgroup_auc_gap=0.5,
        max_subgroup_tpr_gap=1.0,
        max_subgroup_fpr_gap=1.0,
        max_comparator_shortfall=1.0,
        min_subgroup_size=1,
        min_subgroup_events=1,
    )
    first = run_local(out_dir=out_dir, rows=3000, seed=5, clock=fixed_clock, settings=PipelineSettings(gate=lenient))
    assert first.registered_version == "1"
    client = tracking.client(first.tracking_uri)
    client.set_model_version_tag("readmission-risk", "1", APPROVAL_TAG, "Approved")  # a reviewer approved it

    weak = TrainingSettings(max_iter=10, learning_rate=0.02, max_leaf_nodes=2)
    second = run_local(
        out_dir=out_dir, rows=3000, seed=5, clock=fixed_clock, settings=PipelineSettings(gate=lenient, training=weak)
    )
    assert (second.verdict, second.exit_code) == ("Rejected", 1)
    (reason,) = second.reasons
    assert "approved readmission-risk v1" in reason and "this run's test split" in reason and "worse than" in reason
    assert second.decision["approved_reference"]["auc"] > second.evaluation["candidate"]["auc"] + 0.02


def test_subgroup_too_small_is_inconclusive(out_dir: Path) -> None:
    result = run_local(
        out_dir=out_dir, rows=2000, clock=fixed_clock, settings=small_data_settings(min_auc=0.5, min_subgroup_size=400)
    )
    assert (result.verdict, result.exit_code) == ("Inconclusive", 2)
    assert any("too small to judge" in r for r in result.reasons) and result.registered_version is None


def test_one_class_label_is_unusable(out_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "extract.csv"
    generate_readmission(800, seed=2, end_date=FIXED_CLOCK.date()).assign(readmitted_30d=0).to_csv(data, index=False)
    result = run_local(out_dir=out_dir, data=data, clock=fixed_clock)
    assert (result.verdict, result.exit_code, result.stopped_at) == ("Unusable", 2, "validate")
    assert "one class" in result.reasons[0]


def test_unreadable_inputs_raise_input_errors(out_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        run_local(out_dir=out_dir, data=tmp_path / "missing.csv", clock=fixed_clock)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(InputError, match="cannot be read"):
        run_local(out_dir=out_dir, data=binary, clock=fixed_clock)
    with pytest.raises(InputError, match="no built-in contract"):
        run_local(out_dir=out_dir, model="no-such-model", clock=fixed_clock)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        run_local(out_dir=out_dir, contract=bad, clock=fixed_clock)


def test_any_csv_with_its_own_contract(out_dir: Path, tmp_path: Path) -> None:
    """Not the generator's data: a different outcome, different columns, a string label and a patient key."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=5, n_informative=4, n_redundant=0, random_state=0)
    frame = pd.DataFrame(x, columns=[f"marker_{i}" for i in range(5)])
    frame["site"] = pd.Series(["north", "south", "east"]).sample(3000, replace=True, random_state=1).to_numpy()
    frame["patient_id"] = [f"P{i:06d}" for i in range(3000)]
    frame["icu_transfer"] = ["yes" if v else "no" for v in y]
    data = tmp_path / "icu.csv"
    frame.to_csv(data, index=False)
    contract = tmp_path / "icu.yaml"
    contract.write_text(
        "name: icu-transfer\nversion: 0.1.0\ndescription: Ward patients, labelled with ICU transfer within 24 h.\n"
        "label: {column: icu_transfer, positive: 'yes', negative: 'no'}\nsplit: {group_by: patient_id}\n"
        "columns:\n  patient_id: {dtype: string, phi: true, phi_handling: tokenize}\n"
        "  site: {dtype: category, categories: [north, south, east], sensitive: true}\n"
        "  icu_transfer: {dtype: category, categories: ['yes', 'no']}\n"
        + "".join(f"  marker_{i}: {{dtype: float, range: [-20, 20], unit: z}}\n" for i in range(5))
    )
    result = run_local(
        out_dir=out_dir,
        data=data,
        contract=contract,
        model="icu-transfer",
        clock=fixed_clock,
        settings=small_data_settings(),
    )
    assert (result.verdict, result.exit_code) == ("PendingManualApproval", 0), result.reasons
    assert set(result.fairness["attributes"]) == {"site"}
    assert "Ward patients" in result.card_path.read_text()  # intended use from the contract
