"""What on-call sees: `gate --out FILE` is unusable input (2), not a failed verdict; progress only on a terminal;
output to a pipe or file is never wrapped at 80 columns."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from clinops import cli, terminal
from tests.conftest import REPO, rendered

CLINOPS = "import sys; from clinops.cli import main; sys.argv[0] = 'clinops'; main()"


def test_gate_out_that_is_a_file_is_a_clear_exit_2(tmp_path: Path) -> None:
    plan = tmp_path / "dev.json"  # the gate judges a plan as the stack its file name names
    from infra.render import dumps

    plan.write_text(dumps(rendered("dev")))
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    result = CliRunner().invoke(cli.app, ["gate", "--plan", str(plan), "--engine", "clinops", "--out", str(a_file)])
    assert result.exit_code == 2, result.output
    assert "is a file; --out takes a directory" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    under_a_file = CliRunner().invoke(
        cli.app, ["gate", "--plan", str(plan), "--engine", "clinops", "--out", str(a_file / "bundle")]
    )
    assert under_a_file.exit_code == 2 and "cannot write the evidence bundle" in " ".join(under_a_file.output.split())


def test_progress_only_on_a_terminal() -> None:
    quiet = Console(file=io.StringIO(), force_terminal=False)
    with terminal.progress(quiet, "rendering dev ..."):
        pass
    assert quiet.file.getvalue() == ""  # type: ignore[attr-defined]
    shown = Console(file=io.StringIO(), force_terminal=True)
    with terminal.progress(shown, "rendering dev ..."):
        shown.print("inside")
    assert "inside" in shown.file.getvalue()  # type: ignore[attr-defined]


def test_piped_output_is_not_wrapped_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = terminal.make_console()  # pytest captures stdout: not a terminal
    assert not console.is_terminal and console.width == terminal.PIPE_WIDTH
    buffer = io.StringIO()
    console.file = buffer
    answer = json.dumps({"finding": "x" * 150, "path": "out/evidence/dev/" + "y" * 90})
    console.print(answer)
    assert buffer.getvalue().strip() == answer  # one line, byte for byte


def test_a_piped_command_keeps_long_lines_whole(tmp_path: Path) -> None:
    """A real subprocess with stdout to a pipe: a long error line arrives on one line."""
    long_dir = tmp_path / ("d" * 120)
    result = subprocess.run(
        [sys.executable, "-c", CLINOPS, "evidence", "verify", "--log", str(long_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 2
    assert any(str(long_dir) in line for line in result.stderr.splitlines()), result.stderr
