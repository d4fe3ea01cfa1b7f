"""`clinops evidence`: verify the hash-chained evidence log, show a model's history, export a date range.

Exit codes of `verify`: 0 the log is intact; 1 tampering found (each problem printed with its seq);
2 unusable input (no such directory or bucket, no access, a malformed --s3 or --expected-head); 15 the log
holds no entries (nothing was verified: never "INTACT").

With `--stack S` the local log is `out/evidence/S/` (where `clinops release` and `verify` write it), also when
`--log` names the parent folder.
An entry that exists but does not parse counts as tampering (1), not as unusable input: clinops only ever
publishes complete, canonical entries atomically, so unparseable bytes under an entry's name mean the
entry was modified or the storage corrupted it - either way the evidence is no longer intact.
`show` exits 0 after printing, 1 when the log does not verify (the history is printed, but may be
incomplete), 2 on unusable input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.text import Text

from clinops.evidence.entry import Anchor, EvidenceEntry
from clinops.evidence.errors import EvidenceError
from clinops.evidence.log import EvidenceLog, select_history
from clinops.evidence.report import VerifyReport
from clinops.evidence.store import ENTRY_NAME
from clinops.exitcodes import ExitCode
from clinops.terminal import make_console

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

DEFAULT_LOG = Path("out/evidence")

LOG_OPTION = typer.Option(None, "--log", help=f"local evidence directory (default {DEFAULT_LOG})")
S3_OPTION = typer.Option(None, "--s3", help="evidence in S3: s3://BUCKET/PREFIX (needs --stack)")
STACK_OPTION = typer.Option(None, "--stack", help="stack whose log to read (required with --s3)")
MAC_KEY_OPTION = typer.Option(
    None, "--mac-key", envvar="CLINOPS_EVIDENCE_MAC_KEY", help="with --s3: the stack's evidence KMS HMAC key ARN"
)
MAC_KEY_FILE_OPTION = typer.Option(
    None, "--mac-key-file", help="with --log: the dev-only key file (default: DIR.mac-key beside the log)"
)


def _stdout() -> Console:
    return make_console()  # per call: rich reads the terminal width (COLUMNS) when a console is made


def _stderr() -> Console:
    return make_console(stderr=True)


def _unusable(message: str) -> NoReturn:
    _stderr().print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(ExitCode.UNUSABLE_INPUT)


def open_log(
    log: Path | None,
    s3: str | None,
    stack: str | None,
    mac_key: str | None = None,
    mac_key_file: Path | None = None,
) -> EvidenceLog:
    from clinops.evidence.s3 import parse_s3_uri

    if log is not None and s3 is not None:
        _unusable("give --log DIR or --s3 s3://BUCKET/PREFIX, not both")
    if s3 is not None:
        try:
            bucket, prefix = parse_s3_uri(s3)
        except ValueError as exc:
            _unusable(str(exc))
        if not stack:
            _unusable("--s3 needs --stack (entries live under PREFIX/STACK/)")
        if not mac_key:
            _unusable("--s3 needs --mac-key (the stack's evidence HMAC key ARN, stack output evidenceMacKeyArn)")
        try:
            return EvidenceLog.s3(bucket, prefix, stack, mac_key_id=mac_key)
        except (BotoCoreError, EvidenceError) as exc:
            _unusable(f"cannot open the S3 evidence log: {exc}")
    directory = resolve_local_log(log, stack)
    return EvidenceLog.local(directory, stack, key_file=mac_key_file, create_key=False)


def _holds_entries(directory: Path) -> bool:
    return any(ENTRY_NAME.match(p.name) for p in directory.iterdir() if p.is_file())


def resolve_local_log(log: Path | None, stack: str | None) -> Path:
    """The stack's log: release and verify write `out/evidence/<stack>/`; `--log` may name it or its parent."""
    directory = log or DEFAULT_LOG
    if not directory.is_dir():
        _unusable(f"{directory}: no evidence log here (directory not found); fix: --log DIR or --s3 URI")
    if stack and directory.name != stack and (directory / stack).is_dir():
        return directory / stack
    if not _holds_entries(directory):
        stacks = sorted(p.name for p in directory.iterdir() if p.is_dir() and _holds_entries(p))
        if stacks and not stack:
            _unusable(f"{directory} holds the logs of stacks {', '.join(stacks)}: pass --stack (one of them)")
    return directory


def _location(report: VerifyReport) -> str:
    where = report.location
    if where.get("backend") == "s3":
        return f"s3://{where['bucket']}/{where['prefix']}"
    return str(where.get("path"))


def print_report(report: VerifyReport, console: Console) -> None:
    def _line(text: Text) -> None:
        # Never wrap report lines: paths and hashes must survive copy and paste (and grep) intact.
        console.print(text, soft_wrap=True)

    _line(Text(f"evidence log: {_location(report)}"))
    if report.location.get("backend") == "s3":
        lock = report.location.get("object_lock")
        _line(Text(f"object lock:  {json.dumps(lock, sort_keys=True) if lock else 'unreadable or absent'}"))
    _line(Text(f"entries:      {report.entries}, head {report.head or 'none (empty or damaged)'}"))
    _line(Text(f"published:    {report.published_head or 'none trusted'}"))
    if report.expected_head is not None:
        _line(Text(f"anchor:       {report.expected_head}"))
    for warning in report.warnings:
        _line(Text.assemble(("warning: ", "yellow"), warning))
    if report.ok and report.entries == 0:
        _line(Text("EMPTY: no entries here, so nothing was verified (wrong --log or --stack?)", style="bold red"))
        return
    if report.ok:
        _line(Text("INTACT: every hash, link and seq checks out", style="bold green"))
        return
    _line(Text(f"TAMPERED: {len(report.problems)} problem(s)", style="bold red"))
    for problem in report.problems:
        _line(Text(f"  {problem}"))


@app.command("verify")
def verify_cmd(
    log: Path | None = LOG_OPTION,
    s3: str | None = S3_OPTION,
    stack: str | None = STACK_OPTION,
    expected_head: str | None = typer.Option(
        None, "--expected-head", help="anchor recorded elsewhere, SEQ:HASH or HASH: also catches a truncated tail"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    mac_key: str | None = MAC_KEY_OPTION,
    mac_key_file: Path | None = MAC_KEY_FILE_OPTION,
) -> None:
    """Recompute every hash and link; exit 0 intact, 1 tampering found, 2 unusable input."""
    anchor = None
    if expected_head is not None:
        try:
            anchor = Anchor.parse(expected_head)
        except ValueError as exc:
            _unusable(str(exc))
    evidence = open_log(log, s3, stack, mac_key, mac_key_file)
    try:
        report = evidence.verify(expected_head=anchor)
    except EvidenceError as exc:
        _unusable(str(exc))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report, _stdout())
    if report.ok and report.entries == 0:
        raise typer.Exit(ExitCode.EVIDENCE_UNAVAILABLE)
    raise typer.Exit(ExitCode.OK if report.ok else ExitCode.FAILED)


def _short_actor(actor: str) -> str:
    """`arn:aws:sts::111:assumed-role/deployer/ci-123` reads as `111 assumed-role/deployer/ci-123`."""
    parts = actor.split(":", 5)
    return f"{parts[4]} {parts[5]}" if actor.startswith("arn:") and len(parts) == 6 else actor


def history_blocks(entries: list[EvidenceEntry]) -> list[Text]:
    """One block per entry, label and value on their own lines: readable at 100 columns (a table of eight
    columns is not), and the details wrap under their label instead of squeezing every other column."""
    blocks = []
    for entry in entries:
        block = Text()
        block.append(f"#{entry.seq}", style="bold")
        block.append(f"  {entry.at.strftime('%Y-%m-%d %H:%M:%S')} UTC  ")
        block.append(entry.kind.value, style="bold cyan")
        block.append(f"  {entry.model}" + (f" version {entry.model_version}" if entry.model_version else ""))
        block.append(f"\n    by      {_short_actor(entry.actor)}")
        block.append(f"\n    reason  {entry.reason}")
        if entry.package_arn:
            block.append(f"\n    package {entry.package_arn}")
        for key, value in sorted(entry.details.items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
            block.append(f"\n    {key}: {shown}", style="dim" if key in ("checks_passed",) else None)
        block.append(f"\n    hash    {entry.hash[:16]}\n")
        blocks.append(block)
    return blocks


@app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="file to write: .csv (spreadsheet) or .html (to read and file)"),
    start: str | None = typer.Option(None, "--from", help="first day, YYYY-MM-DD (UTC; default: the first entry)"),
    end: str | None = typer.Option(None, "--to", help="last day, YYYY-MM-DD (UTC, inclusive; default: today)"),
    model: str | None = typer.Option(None, "--model", help="only this model's entries"),
    log: Path | None = LOG_OPTION,
    s3: str | None = S3_OPTION,
    stack: str | None = STACK_OPTION,
) -> None:
    """Export a date range of the evidence log for an auditor, as CSV or HTML. Exit 1 if the log does not verify
    (the export is still written, and says so), 15 if the log holds no entries."""
    from datetime import UTC, date, datetime

    from clinops.cli.evidence_export import in_range, to_csv, to_html

    if out.suffix not in (".csv", ".html"):
        _unusable(f"--out {out}: name a .csv or .html file")
    try:
        first, last = (date.fromisoformat(d) if d else None for d in (start, end))
    except ValueError as exc:
        _unusable(f"--from/--to: {exc}; fix: YYYY-MM-DD")
    if first and last and last < first:
        _unusable(f"--to {last} is before --from {first}")
    evidence = open_log(log, s3, stack)
    try:
        report, chain = evidence.check()
    except EvidenceError as exc:
        _unusable(str(exc))
    if report.entries == 0:
        _stderr().print(Text(f"the log at {_location(report)} holds no entries", style="bold red"), soft_wrap=True)
        raise typer.Exit(ExitCode.EVIDENCE_UNAVAILABLE)
    trusted = [e for _, e in sorted(chain.trusted.items())]
    chosen = in_range([e for e in trusted if model is None or e.model == model], first, last)
    meta = {
        "location": _location(report),
        "range": f"{first or 'first entry'} to {last or 'last entry'}" + (f", model {model}" if model else ""),
        "total": report.entries,
        "intact": report.ok,
        "problems": len(report.problems),
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_csv(chosen) if out.suffix == ".csv" else to_html(chosen, meta), encoding="utf-8")
    except OSError as exc:
        _unusable(f"cannot write {out}: {exc.strerror or exc}")
    _stdout().print(Text(f"exported {len(chosen)} of {report.entries} entries to {out}"), soft_wrap=True)
    if not report.ok:
        _stderr().print(
            Text(f"the log does not verify ({len(report.problems)} problem(s)); the export says so", style="bold red"),
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.FAILED)


@app.command("show")
def show_cmd(
    model: str = typer.Option(..., "--model", help="model slug, e.g. readmission-risk"),
    version: str | None = typer.Option(None, "--version", help="only this model version"),
    log: Path | None = LOG_OPTION,
    s3: str | None = S3_OPTION,
    stack: str | None = STACK_OPTION,
    mac_key: str | None = MAC_KEY_OPTION,
    mac_key_file: Path | None = MAC_KEY_FILE_OPTION,
) -> None:
    """Print a model's (or one version's) whole evidence history in order."""
    evidence = open_log(log, s3, stack, mac_key, mac_key_file)
    try:
        report, chain = evidence.check()
    except EvidenceError as exc:
        _unusable(str(exc))
    entries = select_history([e for _, e in sorted(chain.trusted.items())], model, version)
    subject = model if version is None else f"{model} version {version}"
    console = _stdout()
    if report.ok and report.entries == 0:
        _stderr().print(
            Text(f"the log at {_location(report)} holds no entries (wrong --log or --stack?)", style="bold red"),
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.EVIDENCE_UNAVAILABLE)
    if entries:
        console.print(
            Text(f"evidence for {subject} ({len(entries)} entries) in {_location(report)}", style="bold"),
            soft_wrap=True,
        )
        for block in history_blocks(entries):
            console.print(block)
    else:
        console.print(Text(f"no evidence for {subject} in {_location(report)}"), soft_wrap=True)
    if not report.ok:
        warning = (
            f"the log does not verify ({len(report.problems)} problem(s)): this history may be incomplete; "
            "run `clinops evidence verify`"
        )
        _stderr().print(Text(warning, style="bold red"), soft_wrap=True)
        raise typer.Exit(ExitCode.FAILED)
