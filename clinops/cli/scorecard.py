"""`clinops scorecard`: cycle time, promotion success, rollbacks by cause, time-to-detect and time-to-rollback,
SLO attainment, budget left and cost per 1,000 predictions - from the verified evidence log, plus CloudWatch
with --cloudwatch. A log that does not verify is refused (exit 1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clinops.config import ConfigError, load_from_stack_file
from clinops.evidence import EvidenceLog
from clinops.exitcodes import ExitCode
from serving.release.scorecard import CloudWatchTraffic, ScorecardRefused, compute
from serving.release.scorecard_html import render_html

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def scorecard(
    stack: str = typer.Option("prod", "--stack", help="the stack whose evidence and SLOs to score"),
    since: str | None = typer.Option(None, "--since", help="only promotions and incidents from DATE (YYYY-MM-DD)"),
    log: Path = typer.Option(Path("out/evidence"), "--log", help="evidence directory (holds <stack>/)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of the summary"),
    html: Path | None = typer.Option(None, "--html", help="also write the HTML page with charts here"),
    cloudwatch: bool = typer.Option(False, "--cloudwatch", help="read traffic from CloudWatch (AWS credentials)"),
) -> None:
    """Score the release process of a stack from its evidence."""
    err = Console(stderr=True)
    try:
        config = load_from_stack_file(stack)
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    except ValueError:
        err.print(f"[bold red]error:[/] --since '{since}' is not a date; fix: YYYY-MM-DD")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    where = log / stack
    if not where.is_dir():
        err.print(f"[bold red]error:[/] no evidence log at {where}; fix: --log DIR holding {stack}/")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    traffic = None
    if cloudwatch:
        import boto3

        traffic = CloudWatchTraffic(boto3.client("cloudwatch", region_name=config.region))
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        card = compute(config, EvidenceLog.local(where, stack), since=start, traffic=traffic)
    except ScorecardRefused as exc:
        err.print(f"[bold red]refused:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ExitCode.FAILED) from None
    except (BotoCoreError, ClientError) as exc:
        err.print(f"[bold red]error:[/] CloudWatch unavailable ({exc}); fix: credentials, or run without --cloudwatch")
        raise typer.Exit(ExitCode.AWS_UNAVAILABLE) from None
    doc = card.as_dict()
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(doc))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    console = Console()
    summary = Table(title=f"release scorecard: {stack} ({doc['evidence']['entries']} verified entries)")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for key, value in doc["summary"].items():
        summary.add_row(key.replace("_", " "), "n/a" if value is None else str(value))
    console.print(summary)
    services = Table(title="service levels and cost")
    for column in ("model", "objective %", "attained %", "budget left %", "USD / 1,000", "target", "source"):
        services.add_column(column)
    for s in doc["services"]:
        services.add_row(
            s["model"],
            str(s["availability_objective"]),
            _n(s["attainment_percent"]),
            _n(s["budget_left_percent"]),
            _n(s["cost_per_1000_usd"]),
            str(s["cost_target_usd"]),
            s["source"],
        )
    console.print(services)
    if html is not None:
        console.print(f"HTML: {html}")


def _n(value: object) -> str:
    return "n/a" if value is None else str(value)
