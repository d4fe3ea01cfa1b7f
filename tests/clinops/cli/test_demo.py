"""`make demo` tells one story: the drift step monitors the model the pipeline step just trained (not a stand-in),
and leaves nothing outside OUT."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from clinops.cli import demo


def test_the_drift_step_monitors_the_newest_trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "pipeline" / "readmission-risk"
    for stamp in ("20261201T000000Z", "20261206T000000Z"):
        (runs / stamp / "model").mkdir(parents=True)
        (runs / stamp / "model" / "model.joblib").write_bytes(b"model")
    seen: list[list[str]] = []

    def run(command: list[str], check: bool) -> Any:
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(demo.subprocess, "run", run)
    assert demo.drift_demo(tmp_path, Console(force_terminal=False))
    [command] = seen
    assert command[command.index("--bundle") + 1] == str(runs / "20261206T000000Z" / "model")
    assert command[command.index("--out") + 1] == str(tmp_path / "drift-demo")


def test_the_drift_step_without_a_trained_run_fails_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: pytest.fail("nothing to monitor, nothing to run"))
    assert not demo.drift_demo(tmp_path, Console(force_terminal=False, width=200))
    assert "clinops pipeline run --local --model readmission-risk" in " ".join(capsys.readouterr().out.split())


def test_the_serve_step_asks_about_patients_of_the_synthetic_cohort() -> None:
    """Header CSV in contract order, drawn from the training cohort's generator (not the canary's range sweep)."""
    import io

    import pandas as pd

    from pipelines.contracts import builtin_contract_path, load_contract

    contract = load_contract(builtin_contract_path("readmission-risk"))
    table = pd.read_csv(io.StringIO(demo.plausible_patients_csv(rows=3)))
    assert list(table.columns) == contract.feature_columns and len(table) == 3
    for name in contract.numeric_features:
        low, high = contract.columns[name].range or (float("-inf"), float("inf"))
        assert table[name].dropna().between(low, high).all(), name
    assert demo.plausible_patients_csv(rows=3) == demo.plausible_patients_csv(rows=3)  # deterministic
