"""One exit-code table, one meaning per code, shown in every command's --help; a crash is never a verdict."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from clinops import cli
from clinops.exitcodes import MEANING, ExitCode
from tests.conftest import REPO

SOURCES = ("clinops", "infra", "pipelines", "serving", "policies")


def test_every_code_has_one_meaning_and_one_value() -> None:
    assert set(MEANING) == set(ExitCode)
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.UNUSABLE_INPUT) == (0, 1, 2)
    assert ExitCode.CRASH not in (0, 1, 2) and max(c for c in ExitCode if c != ExitCode.CRASH) < ExitCode.CRASH


def test_no_module_keeps_its_own_exit_codes() -> None:
    local = re.compile(r"^\s*EXIT_\w+\s*(,\s*EXIT_\w+\s*)*=", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for top in SOURCES
        for path in (REPO / top).rglob("*.py")
        if local.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("command", ["render", "gate", "demo", *cli.LAZY_COMMANDS])
def test_every_command_lists_its_exit_codes_in_help(command: str) -> None:
    result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Exit codes:" in result.output and "70 an unexpected error" in result.output
    for code in cli.EXIT_CODES.get(command, ()):
        assert f"{int(code)} {MEANING[code][:20]}" in " ".join(result.output.split())


def test_a_crash_exits_70_not_the_verdict_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import infra.render

    def broken(stack: str, **_: object) -> dict:
        raise RuntimeError("a bug")

    monkeypatch.setattr(infra.render, "render", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main(["render", "dev", "--quiet"])
    assert exited.value.code == ExitCode.CRASH == 70
    assert "RuntimeError: a bug" in capsys.readouterr().err


def test_a_verdict_still_exits_with_its_own_code() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["gate", "--plan", "/nonexistent/plan.json"])
    assert exited.value.code == ExitCode.UNUSABLE_INPUT
