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
