"""`clinops cost STACK`: what a stack costs per month before it serves a prediction, from the shipped price table
(clinops/prices.json, with its source and date; `clinops:instancePrices` overrides). Offline: no AWS call."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clinops.config import ConfigError, load_from_stack_file
from clinops.exitcodes import ExitCode
from clinops.pricing import PriceError, fixed_monthly_cost, price_table

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def cost(
    stack: str = typer.Argument(..., help="dev, staging or prod (any Pulumi.<stack>.yaml)"),
    log_gb: float = typer.Option(5.0, "--log-gb", min=0, help="CloudWatch Logs ingested per month (GB)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Print the stack's fixed monthly cost: interface endpoints per AZ, endpoints, Studio, MLflow, logs."""
    err = Console(stderr=True)
    try:
        config = load_from_stack_file(stack)
        lines = fixed_monthly_cost(config, log_gb)
    except (ConfigError, PriceError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    table = price_table(config.instance_prices)
    total = sum(line.monthly_usd for line in lines)
    if as_json:
        doc = {
            "stack": stack,
            "currency": "USD",
            "prices": {"source": table.source, "recorded": table.recorded, "region": table.region},
            "lines": [{"item": x.item, "quantity": x.quantity, "monthly_usd": round(x.monthly_usd, 2)} for x in lines],
            "total_monthly_usd": round(total, 2),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    out = Table(title=f"{stack}: fixed monthly cost (USD)")
    out.add_column("item")
    out.add_column("quantity")
    out.add_column("per month", justify="right")
    for line in lines:
        out.add_row(line.item, line.quantity, f"{line.monthly_usd:,.2f}")
    out.add_row("total", "", f"{total:,.2f}", style="bold")
    console = Console()
    console.print(out)
    console.print(f"prices: {table.region}, recorded {table.recorded}; source: {table.source}", soft_wrap=True)
