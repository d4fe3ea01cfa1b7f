"""`clinops rehearse`: the release path end to end, offline - release -> verify -> a drift alarm -> the circuit
breaker -> the last-known-good -> reconcile -> the evidence log verified -> the scorecard - through the real code
in a fake AWS account (moto in process; botocore Stubber where moto lacks an operation). No AWS account, no
network, no real credentials. The orchestration is `serving.rollback.rehearsal`.

Exit codes: 0 every phase reached its expected outcome; 1 a phase did not (named, with why); 2 unusable input
(no trained run, unknown stack, model or fault)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from clinops.exitcodes import ExitCode
from clinops.terminal import make_console, progress

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def rehearse(
    out_dir: Path = typer.Option(Path("out"), "--out-dir", help="the demo's output: reads pipeline/, writes evidence/"),
    stack: str = typer.Option("dev", "--stack", help="the stack rehearsed (its account, principals and models)"),
    model: str = typer.Option("readmission-risk", "--model", help="the model released"),
    run: Path | None = typer.Option(None, "--run", help="training run to release (default: the newest under OUT)"),
    engine: list[str] | None = typer.Option(None, "--engine", help="gate engines (repeatable; default: all)"),
    fault: str | None = typer.Option(
        None, "--fault", help="rehearse a failure: unverified-last-known-good, self-approval or tampered-evidence"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also print the Lambda handlers' log lines"),
) -> None:
    """Rehearse release -> verify -> alarm -> circuit breaker -> last-known-good -> reconcile -> evidence."""
    from serving.rollback.rehearsal import (
        FAULTS,
        PHASES,
        PhaseResult,
        Rehearsal,
        RehearsalOptions,
        RehearsalUnusable,
    )

    console, err = make_console(), make_console(stderr=True)
    titles = dict(PHASES)
    options = RehearsalOptions(out_dir, stack, model, run, tuple(engine) if engine else None, fault)

    def show(phase: PhaseResult) -> None:
        mark = Text(" ok ", style="bold green") if phase.ok else Text("FAIL", style="bold red")
        if phase.ok and phase.warning:
            mark = Text("warn", style="bold yellow")
        console.print(
            Text.assemble(
                mark, f" {phase.name:<9} ", (f"{phase.seconds:6.2f} s  ", "dim"), (titles[phase.name], "bold")
            ),
            soft_wrap=True,
        )
        console.print(Text(f"      {phase.summary}", style="" if phase.ok else "red"), soft_wrap=True)
        for line in phase.details:
            console.print(Text(f"      - {line}", style="dim"), soft_wrap=True)
        if phase.warning:
            console.print(Text(f"      ! {phase.warning}", style="yellow"), soft_wrap=True)
        if phase.evidence:
            console.print(Text(f"      evidence: {', '.join(phase.evidence)}", style="cyan"), soft_wrap=True)
        for line in phase.logs if verbose or not phase.ok else []:
            console.print(Text(f"      log: {line}", style="dim"), soft_wrap=True)

    console.rule("release-path rehearsal (offline: moto in process, fake credentials, no network)")
    if fault:
        console.print(Text(f"fault rehearsed: {fault}: {FAULTS.get(fault, '?')}", style="yellow"), soft_wrap=True)
    try:
        result = Rehearsal(options, show, lambda name: progress(err, f"{name}: {titles[name]} ...")).run()
    except RehearsalUnusable as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    total = sum(p.seconds for p in result.phases)
    if result.scorecard:
        table = Table(title=f"scorecard of {stack} from {result.evidence_dir} (verified)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key, value in result.scorecard["summary"].items():
            table.add_row(key.replace("_", " "), "n/a" if value is None else str(value))
        console.print(table)
    if result.ok:
        console.print(
            Text(f"rehearsal passed: {len(result.phases)} phases in {total:.1f} s", style="bold green"), soft_wrap=True
        )
        console.print(
            f"read it yourself: clinops evidence verify --stack {stack} --log {out_dir / 'evidence'}; "
            f"clinops evidence show --model {model} --stack {stack} --log {out_dir / 'evidence'}; "
            f"clinops scorecard --stack {stack} --log {out_dir / 'evidence'}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        raise typer.Exit(ExitCode.OK)
    failed = result.failed_phase or "?"
    err.print(
        Text(
            f"REHEARSAL FAILED at phase '{failed}' after {total:.1f} s"
            + (f" (fault rehearsed: {fault})" if fault else ""),
            style="bold red",
        ),
        soft_wrap=True,
    )
    raise typer.Exit(ExitCode.FAILED)
