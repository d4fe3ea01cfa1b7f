"""Every command in README.md and RUNBOOK.md runs as written, so the documents cannot rot.

Commands come from the fenced shell blocks and from inline `clinops ... --stack ...` spans (full operator
commands). Placeholders (S, M, <ARN>, ...) take test values. How each is run:
- `clinops ...`: through the real CLI in process. Commands that read a stack stop at the stack-file read (a
  sentinel): everything before it - option parsing, required options, option combinations - must pass.
  Offline commands (render, evidence) run for real against fixtures in a temporary directory.
- `aws ...`: the operation (or waiter) and every option are checked against botocore's service model.
- `make ...`: the target exists in the Makefile. `pulumi` and `git` are not installed here: named only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO

DOCS = ("README.md", "RUNBOOK.md")
PLACEHOLDERS = {
    "<ARN>": "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/3",
    "ARN": "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/3",
    "<name>": "clinops-dev-readmission-risk-5xx-rate",
    "<incident>": "INC-1234",
    "<that value>": "clinops-dev-readmission-risk-abc123",
    "<data bucket>": "clinops-dev-data",
    "<evidence bucket>": "clinops-dev-evidence",
    "WHY": "a documented reason",
    "S": "dev",
    "M": "readmission-risk",
    "...": "a reason of some length",
}
NAMED_ONLY = {"pulumi", "git"}  # not installed on this machine; their syntax is theirs


@dataclass(frozen=True)
class DocCommand:
    source: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def _substitute(word: str) -> str:
    if word in PLACEHOLDERS:
        return PLACEHOLDERS[word]
    for key, value in PLACEHOLDERS.items():
        if key.startswith("<") and key in word:
            word = word.replace(key, value)
    word = re.sub(r"/S(/|$)", r"/dev\1", word)
    return re.sub(r"(^|/)M(/|$)", r"\1readmission-risk\2", word)


def _words(text: str) -> list[str]:
    for key, value in PLACEHOLDERS.items():  # before splitting: a placeholder may hold a space
        if key.startswith("<"):
            text = text.replace(key, value)
    words = shlex.split(text, comments=True)
    out = []
    for i, word in enumerate(words):
        previous = words[i - 1] if i else ""
        if word == "S" and previous == "--stack":
            word = "dev"
        elif word == "M" and previous == "--model":
            word = "readmission-risk"
        out.append(_substitute(word))
    return out


def doc_commands() -> list[DocCommand]:
    commands = []
    for name in DOCS:
        text = (REPO / name).read_text()
        for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
            if lang not in ("", "bash", "sh", "shell", "console"):
                continue
            for line in body.splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    commands.append(DocCommand(name, line.strip()))
        prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
        for span in re.findall(r"`((?:\.venv/bin/)?clinops [^`]*--stack[^`]*)`", prose):
            commands.append(DocCommand(name, re.sub(r"\s*\[[^\]]*\]", "", span)))  # [--optional] parts dropped
    return commands


class ReachedStack(Exception):
    """The command got past its own argument checks to reading the stack file: as far as a doc test goes."""


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd with an evidence log for dev, and stack reads stopped at the sentinel."""
    import clinops.cli.rollback
    import serving.release.release
    from serving.release.evidence import EvidenceLocation, record

    def reached(*args: object, **kwargs: object) -> None:
        raise ReachedStack

    monkeypatch.setattr(clinops.cli.rollback, "load_from_stack_file", reached)
    monkeypatch.setattr(serving.release.release, "load_from_stack_file", reached)
    monkeypatch.chdir(tmp_path)
    log = EvidenceLocation(str(tmp_path / "out" / "evidence")).log("dev")
    record(
        log,
        "verification",
        "deployment",
        model="readmission-risk",
        package_arn=PLACEHOLDERS["<ARN>"],
        actor="arn:aws:iam::111111111111:role/deployer",
        reason="doc test fixture",
        details={"passed": True},
    )
    return tmp_path


def _run_clinops(args: list[str]) -> tuple[bool, str]:
    from clinops import cli

    result = CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})
    if isinstance(result.exception, ReachedStack):
        return True, "reached the stack read"
    return result.exit_code == 0, result.output


def _check_aws(args: list[str]) -> str | None:
    """None when `aws SERVICE OPERATION --options` exists in botocore's model, else what is wrong."""
    import botocore.session
    from botocore import xform_name

    service, operation, *rest = args
    session = botocore.session.get_session()
    model = session.get_service_model(service)
    if operation == "wait":
        waiters = session.get_waiter_model(service).waiter_names
        wanted = rest[0]
        if not any(xform_name(w, "-") == wanted for w in waiters):
            return f"no waiter {wanted} for {service}"
        operation_name = (
            session.get_waiter_model(service)
            .get_waiter(next(w for w in waiters if xform_name(w, "-") == wanted))
            .operation
        )
        rest = rest[1:]
    else:
        names = {xform_name(op, "-"): op for op in model.operation_names}
        if operation not in names:
            return f"no operation {operation} in {service}"
        operation_name = names[operation]
    members = {xform_name(m, "-") for m in model.operation_model(operation_name).input_shape.members}
    globals_ = {"query", "output", "region", "profile"}
    for word in rest:
        if word.startswith("--"):
            option = word[2:].removeprefix("no-")
            if option not in members and option not in globals_:
                return f"{service} {operation}: no option --{option}"
    return None


@pytest.mark.parametrize("command", doc_commands(), ids=str)
def test_documented_command_runs_as_written(command: DocCommand, offline: Path) -> None:
    words = _words(command.text)
    if "&&" in words:
        words = words[: words.index("&&")]
    tool = words[0]
    if tool.endswith("clinops"):
        ok, output = _run_clinops(words[1:])
        assert ok, f"{command}\n{output}"
    elif tool == "aws":
        problem = _check_aws(words[1:])
        assert problem is None, f"{command}: {problem}"
    elif tool == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.MULTILINE))
        assert set(words[1:]) <= targets, f"{command}: unknown make target"
    else:
        assert tool in NAMED_ONLY, f"{command}: no way to check `{tool}` commands; add one to tests/test_docs.py"


def test_the_rotten_forms_are_caught(offline: Path) -> None:
    """The two forms the RUNBOOK used to show fail here, so a regression in the documents fails the test."""
    assert not _run_clinops(["drill", "rollback", "--stack", "dev", "--model", "m", "--reason", "Q4 drill"])[0]
    assert not _run_clinops(["retrain", "request", "--stack", "dev", "--model", "m", "--reason", "a long reason"])[0]
    assert _check_aws(["sagemaker", "update-endpoint", "--endpoint-nam", "x"]) is not None
    commands = [c.text for c in doc_commands()]
    assert any("retrain request" in c for c in commands) and any("drill rollback" in c for c in commands)
