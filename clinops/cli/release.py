"""Typer apps for `clinops release`, `clinops verify` and `clinops shadow report` (exit codes: errors.py).

The lead mounts them in clinops/cli.py:

    from clinops.cli.release import release_app, shadow_app, verify_app
    app.add_typer(release_app)            # clinops release ...
    app.add_typer(verify_app)             # clinops verify ...
    app.add_typer(shadow_app, name="shadow")   # clinops shadow report ...
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from clinops.config import project_root
from clinops.exitcodes import AwsUnavailable, ExitCode, ReleaseError, UnusableInput
from clinops.terminal import make_console

release_app = typer.Typer(add_completion=False, help="Release an approved model package to a stack.")
verify_app = typer.Typer(add_completion=False, help="Verify a deployed model endpoint against its pin.")
shadow_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Compare a shadow candidate with production.")
console = make_console()
err = make_console(stderr=True)

# The evidence log's actor format: an IAM/STS ARN or `system:identity` (clinops.evidence.entry).
_ACTOR = re.compile(r"^[a-z][a-z0-9+.-]*:\S{1,250}$")
DEFAULT_EVIDENCE = "out/evidence"

STACK = typer.Option(..., "--stack", help="the Pulumi stack (Pulumi.<stack>.yaml)")
MODEL = typer.Option(..., "--model", help="model slug, e.g. readmission-risk")
ACTOR = typer.Option(None, "--actor", help="who acts (IAM/STS ARN or system:identity); default: your STS identity")
EVIDENCE = typer.Option(DEFAULT_EVIDENCE, "--evidence", help="evidence root: DIR or s3://BUCKET/PREFIX (per stack)")
ROOT = typer.Option(None, "--root", help="project root holding Pulumi.<stack>.yaml (default: this checkout)")


def base_session() -> Any:
    """The credentials clinops was started with (tests replace this)."""
    import boto3

    return boto3.Session()


def _fail(exc: ReleaseError) -> NoReturn:
    err.print(Text.assemble((f"refused ({exc.exit_code.name}, exit {int(exc.exit_code)}): ", "bold red"), exc.message))
    raise typer.Exit(int(exc.exit_code))


def _run(action: Any) -> Any:
    """Turn every anticipated failure into its message and exit code; anything else is a bug (exit 1)."""
    try:
        return action()
    except ReleaseError as exc:
        _fail(exc)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        _fail(AwsUnavailable(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}"))
    except BotoCoreError as exc:
        _fail(AwsUnavailable(f"AWS is unreachable or credentials are missing: {exc}"))


def _context(stack: str, actor: str | None, root: Path | None) -> tuple[Any, Any, str, Path]:
    from serving.release.aws import caller_arn, open_stack
    from serving.release.release import load_config

    project = root or project_root()
    config = load_config(stack, project)
    session = base_session()
    who = actor or caller_arn(session, config.region)
    if not _ACTOR.match(who):
        raise UnusableInput(f"--actor '{who}' is not an IAM/STS ARN or system:identity (e.g. github-actions:org/repo)")
    return config, open_stack(config, who, session), who, project


def _evidence(spec: str) -> Any:
    from serving.release.evidence import EvidenceLocation

    return EvidenceLocation.parse(spec)


@release_app.command("release")
def release_cmd(
    stack: str = STACK,
    model: str = MODEL,
    package: str = typer.Option(..., "--package", help="model package ARN (versioned)"),
    reason: str = typer.Option(..., "--reason", help="why: change ticket, clinical sign-off reference"),
    shadow: bool = typer.Option(False, "--shadow", help="deploy as the endpoint's shadow variant (no patient impact)"),
    actor: str | None = ACTOR,
    dry_run: bool = typer.Option(False, "--dry-run", help="check and gate only; change nothing, record nothing"),
    evidence: str = EVIDENCE,
    engine: list[str] | None = typer.Option(None, "--engine", help="gate engines (repeatable; default: all)"),
    root: Path | None = ROOT,
) -> None:
    """Refuse unless Approved, approved by someone other than the author, good enough and promoted in order;
    then pin, gate, record, and `pulumi up` (or print the command)."""
    from serving.release.gate import GateOptions
    from serving.release.release import Releaser, ReleaseRequest

    def action() -> Any:
        _, aws, who, project = _context(stack, actor, root)
        releaser = Releaser(
            project,
            aws,
            _evidence(evidence),
            gate_options=GateOptions(engines=tuple(engine) if engine else None),
            say=lambda line: console.print(Text(line)),
        )
        return releaser.release(ReleaseRequest(stack, model, package, reason, who, shadow=shadow, dry_run=dry_run))

    outcome = _run(action)
    console.print(Text(f"{outcome.status}: {package} -> {stack}/{model}", style="bold green"))


@verify_app.command("verify")
def verify_cmd(
    stack: str = STACK,
    model: str = MODEL,
    reason: str = typer.Option("post-deploy verification", "--reason", help="why this verification runs"),
    actor: str | None = ACTOR,
    evidence: str = EVIDENCE,
    lookback_hours: float = typer.Option(24.0, "--lookback-hours", min=0.1, help="alarm history to search"),
    root: Path | None = ROOT,
) -> None:
    """Exit 0 healthy, 8 busy, 10 rolled back / drifted from the pin, 11 alarms, capture or variants wrong,
    16 never deployed."""
    from serving.release.release import find_model
    from serving.release.verify import ROLLBACK, Verifier, record_verification

    def action() -> Any:
        config, aws, who, _ = _context(stack, actor, root)
        report = Verifier(aws, lookback=dt.timedelta(hours=lookback_hours)).verify(config, find_model(config, model))
        return record_verification(report, _evidence(evidence), actor=who, reason=reason, aws=aws)

    report = _run(action)
    table = Table(title=f"verify {report.endpoint} (pinned {report.package_arn})")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    styles = {
        "pass": "green",
        "warn": "yellow",
        "unhealthy": "red",
        "rollback": "bold red",
        "busy": "yellow",
        "not-deployed": "bold yellow",
    }
    for finding in report.findings:
        table.add_row(finding.check, Text(finding.level, style=styles[finding.level]), Text(finding.message))
    console.print(table)
    for finding in report.findings:
        if finding.level == ROLLBACK:
            err.print(Panel(Text(finding.message), title="ENDPOINT NOT ON ITS PIN", style="bold red"))
    code = report.exit_code
    console.print(
        Text(
            f"{code.name} (exit {int(code)}); evidence seq {report.evidence_seq}",
            style="bold green" if code == ExitCode.OK else "bold red",
        )
    )
    raise typer.Exit(int(code))


@shadow_app.callback()
def shadow_group() -> None:
    """Shadow deployments: compare the candidate with production on the same requests."""


@shadow_app.command("report")
def shadow_report_cmd(
    stack: str = STACK,
    model: str = MODEL,
    package: str | None = typer.Option(None, "--package", help="shadow package (default: serving.shadowPackageArn)"),
    capture: str | None = typer.Option(None, "--capture", help="capture DIR or s3:// (default: the endpoint's)"),
    contract: Path | None = typer.Option(None, "--contract", help="feature contract (default: the model's built-in)"),
    threshold: float | None = typer.Option(None, "--threshold", help="operating threshold if a package lacks one"),
    since: dt.datetime | None = typer.Option(None, "--since", help="window start, UTC (default: shadow went live)"),
    min_samples: int | None = typer.Option(None, "--min-samples", min=1, help="matched requests needed"),
    cloudwatch: bool = typer.Option(True, "--cloudwatch/--no-cloudwatch", help="read error and latency metrics"),
    out: Path | None = typer.Option(None, "--out", help="report directory"),
    reason: str = typer.Option("shadow comparison before canary", "--reason"),
    actor: str | None = ACTOR,
    evidence: str = EVIDENCE,
    root: Path | None = ROOT,
) -> None:
    """Exit 0 pass, 13 the candidate disagrees beyond the criteria, 14 not enough to judge yet."""
    from serving.release.release import find_model
    from serving.release.shadow import ShadowCriteria
    from serving.release.shadow_report import (
        default_out_dir,
        package_model_loader,
        record_report,
        run_report,
        write_report,
    )

    def action() -> Any:
        config, aws, who, _ = _context(stack, actor, root)
        chosen = find_model(config, model)
        criteria = ShadowCriteria(latency_p99_ms=chosen.serving.release.latency_p99_ms)
        if min_samples is not None:
            criteria = ShadowCriteria(min_matched=min_samples, latency_p99_ms=criteria.latency_p99_ms)
        start = since.replace(tzinfo=dt.UTC) if since and since.tzinfo is None else since
        report = run_report(
            aws,
            config,
            chosen,
            criteria=criteria,
            capture=capture,
            contract=contract,
            shadow_arn=package,
            threshold=threshold,
            since=start,
            use_cloudwatch=cloudwatch,
            models=package_model_loader(aws),
        )
        write_report(report, out or default_out_dir(stack, model, report.inputs.shadow_arn))
        return record_report(report, _evidence(evidence), actor=who, reason=reason)

    report = _run(action)
    comparison = report.comparison
    matched = comparison.counts["matched_valid"]
    console.print(
        Text(
            f"shadow report {comparison.verdict.upper()}: {report.inputs.shadow_arn} vs "
            f"{report.inputs.production_arn}; {matched} matched requests"
        )
    )
    for line in comparison.reasons:
        console.print(Text(f"  - {line}"))
    console.print(Text(f"report: {', '.join(str(p) for p in report.paths)}; evidence seq {report.evidence_seq}"))
    raise typer.Exit(int(report.exit_code))
