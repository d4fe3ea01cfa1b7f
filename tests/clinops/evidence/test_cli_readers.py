"""`clinops evidence` as an auditor and on-call use it: the stack's log found where release/verify write it,
an empty log never reported INTACT, `show` readable at 100 columns, and a CSV/HTML export of a date range."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from clinops.cli.evidence import app
from clinops.exitcodes import ExitCode
from tests.clinops.evidence.helpers import MODEL, entry_path, filled_log, overwrite, stepping_clock

runner = CliRunner()


def run(*args: str, columns: int = 200) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": str(columns)})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose out/evidence/prod/ holds a log, as `clinops release --stack prod` leaves it."""
    monkeypatch.chdir(tmp_path)
    filled_log(tmp_path / "out" / "evidence" / "prod", stack="prod")
    return tmp_path


def test_the_stack_log_is_found_where_release_writes_it(project: Path) -> None:
    for args in (["--stack", "prod"], ["--log", "out/evidence", "--stack", "prod"], ["--log", "out/evidence/prod"]):
        result = run("verify", *args)
        assert result.exit_code == 0, result.output
        assert "INTACT" in result.output and "entries:      6" in result.output
        assert "out/evidence/prod" in result.output
    shown = run("show", "--model", MODEL, "--stack", "prod")
    assert shown.exit_code == 0 and "(5 entries)" in shown.output
    unnamed = run("verify")
    assert unnamed.exit_code == 2 and "holds the logs of stacks prod: pass --stack" in unnamed.output


def test_zero_entries_is_never_intact(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("verify", "--log", str(tmp_path / "empty"))
    assert result.exit_code == ExitCode.EVIDENCE_UNAVAILABLE == 15
    assert "EMPTY" in result.output and "INTACT" not in result.output
    assert run("verify", "--log", str(tmp_path / "empty"), "--json").exit_code == 15
    shown = run("show", "--log", str(tmp_path / "empty"), "--model", MODEL)
    assert shown.exit_code == 15 and "holds no entries" in shown.output


def test_show_is_readable_at_100_columns(project: Path) -> None:
    result = run("show", "--model", MODEL, "--stack", "prod", columns=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines if not line.startswith("evidence for")) <= 100
    assert "clinical governance board approved v3" in result.output  # whole, not folded into a narrow cell
    assert "blue/green release of v3" in result.output
    assert any(line.startswith("    reason  ") for line in lines)


def test_export_a_date_range_as_csv_and_html(project: Path) -> None:
    late = stepping_clock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    from clinops.evidence import EvidenceLog

    log = EvidenceLog.local(project / "out" / "evidence" / "prod", "prod", clock=late)
    log.append("drill", model=MODEL, actor="system:github-actions", reason="=HYPERLINK(attack) drill in March")
    result = run("export", "--stack", "prod", "--from", "2025-01-01", "--to", "2025-01-31", "--out", "jan.csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((project / "jan.csv").read_text())))
    assert len(rows) == 6 and [int(r["seq"]) for r in rows] == list(range(6))
    assert rows[1]["reason"] == "clinical governance board approved v3" and len(rows[1]["hash"]) == 64
    march = run("export", "--stack", "prod", "--from", "2025-03-01", "--out", "march.csv")
    assert march.exit_code == 0
    [row] = list(csv.DictReader(io.StringIO((project / "march.csv").read_text())))
    assert row["reason"].startswith("'=HYPERLINK")  # a spreadsheet must not evaluate evidence text
    page = run("export", "--stack", "prod", "--model", MODEL, "--out", "all.html")
    assert page.exit_code == 0
    html = (project / "all.html").read_text()
    assert "<table id='entries'>" in html and "the whole log <span class='ok'>verifies" in html
    assert html.count("<tr>") == 1 + 6  # header + readmission-risk's entries (the other model's excluded)


def test_export_refuses_bad_input_and_flags_a_broken_log(project: Path) -> None:
    assert run("export", "--stack", "prod", "--out", "x.pdf").exit_code == 2
    assert run("export", "--stack", "prod", "--from", "2025-13-01", "--out", "x.csv").exit_code == 2
    assert (
        run("export", "--stack", "prod", "--from", "2025-02-01", "--to", "2025-01-01", "--out", "x.csv").exit_code == 2
    )
    path = entry_path(project / "out" / "evidence" / "prod", 2)
    overwrite(path, path.read_bytes().replace(b"of v3", b"of v4"))
    broken = run("export", "--stack", "prod", "--out", "broken.html")
    assert broken.exit_code == 1 and "does not verify" in broken.output
    assert "DOES NOT VERIFY (1 problem(s))" in (project / "broken.html").read_text()
