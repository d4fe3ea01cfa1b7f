"""`clinops pipeline run --local` through typer's CliRunner: output, exit codes, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinops.cli.pipeline import app
from pipelines.data.injections import Injections
from pipelines.data.synthetic import generate_readmission
from tests.pipelines.conftest import FIXED_CLOCK

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args], env={"COLUMNS": "160"})
    return result.exit_code, result.output


def test_local_run_prints_verdict_metrics_fairness_card_and_version(out_dir: Path) -> None:
    # Test-sized data: subgroup AUCs of a few hundred rows differ by chance, so the gap gate is widened.
    code, output = invoke(
        "--local",
        "--rows",
        "8000",
        "--out",
        str(out_dir),
        "--max-subgroup-auc-gap",
        "0.3",
        "--max-subgroup-tpr-gap",
        "0.9",
        "--max-subgroup-fpr-gap",
        "0.9",
        "--max-comparator-shortfall",
        "0.1",
        "--min-subgroup-size",
        "50",
        "--relaxed-by",
        "dr.test",
        "--as-of",
        "2025-07-01",
    )
    assert code == 0, output
    assert "gate limits relaxed from the platform default: max_subgroup_auc_gap 0.3 (default 0.1)" in output
    assert "relaxed by dr.test" in output and "model-card.html" in output
    assert "Verdict: PendingManualApproval" in output
    assert "Test metrics" in output and "calibration_slope" in output
    assert "Fairness: race_ethnicity" in output and "Fairness: payer" in output
    assert "Model card:" in output and "model-card.md" in output
    assert "Registered in MLflow: readmission-risk version 1 (tag approval_status=PendingManualApproval)" in output
    for step in ("validate", "train", "register"):
        assert f"done {step}" in output


def test_contract_violation_exits_1_with_the_report(out_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "extract.csv"
    generate_readmission(
        600, seed=4, end_date=FIXED_CLOCK.date(), injections=Injections(unit_change="creatinine")
    ).to_csv(data, index=False)
    code, output = invoke("--local", "--data", str(data), "--out", str(out_dir), "--as-of", "2025-07-02")
    assert code == 1, output
    assert "ContractViolated" in output and "umol/L" in output and "contract-report.md" in output
    assert "skipped train" in output and "Registered" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/extract.csv"], "does not exist"),
        (["--contract", "/nonexistent/contract.yaml"], "does not exist"),
        (["--model", "unknown-model"], "no built-in contract"),
        (["--min-auc", "1.5"], "invalid option"),
        (["--as-of", "July 2025"], "invalid option"),
    ],
)
def test_unusable_input_exits_2(out_dir: Path, args: list[str], message: str) -> None:
    code, output = invoke("--local", "--out", str(out_dir), *args)
    assert code == 2 and message in output


def test_contract_that_does_not_parse_exits_2(out_dir: Path, tmp_path: Path) -> None:
    contract = tmp_path / "c.yaml"
    contract.write_text("name: xyz\nversion: 1.0.0\ncolumns: {}\n")
    code, output = invoke("--local", "--contract", str(contract), "--out", str(out_dir))
    assert code == 2 and "does not match the contract format" in output and "label" in output


def test_without_local_nothing_runs(out_dir: Path) -> None:
    code, output = invoke("--out", str(out_dir))
    assert code == 2 and "--local" in output
    assert not (out_dir / "pipeline").exists()
