"""`clinops`: the offline entry point (render, gate, pipeline, demo). `pulumi up` stays the production path."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from clinops.config import ENVIRONMENTS, ConfigError

# No phone-home from any library we drive, before any of them is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def _config_failure(exc: ConfigError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(EXIT_UNUSABLE)


def render_to_file(stack: str, out: Path) -> dict:
    """Render `stack` and write the plan; nothing is written when the config is invalid."""
    from clinops.render import dumps, render

    plan = render(stack)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(dumps(plan))
    tmp.replace(out)  # atomic: a reader never sees half a plan
    return plan


def print_summary(stack: str, plan: dict, out: Path | None) -> None:
    from clinops.render import summarize

    by_component, by_type = summarize(plan)
    table = Table(title=f"stack {stack}: {sum(by_type.values())} resources" + (f" -> {out}" if out else ""))
    table.add_column("component")
    table.add_column("resources", justify="right")
    for component, count in by_component.items():
        table.add_row(component, str(count))
    console.print(table)
    types = Table(show_header=True, box=None, pad_edge=False)
    types.add_column("type", style="dim")
    types.add_column("n", justify="right")
    for type_, count in by_type.items():
        types.add_row(type_, str(count))
    console.print(types)


@app.command("render")
def render_cmd(
    stack: str = typer.Argument(..., help="dev, staging or prod (any Pulumi.<stack>.yaml)"),
    out: Path | None = typer.Option(None, "--out", help="plan file to write (default out/<stack>.json)"),
    quiet: bool = typer.Option(False, "--quiet", help="no summary"),
) -> None:
    """Run the Pulumi program under the mock runtime and write a `pulumi preview --json`-shaped plan."""
    target = out or Path("out") / f"{stack}.json"
    try:
        plan = render_to_file(stack, target)
    except ConfigError as exc:
        raise _config_failure(exc) from None
    if not quiet:
        print_summary(stack, plan, target)


@app.command("demo")
def demo_cmd(out_dir: Path = typer.Option(Path("out"), "--out-dir")) -> None:
    """The main job on embedded defaults: render every stack and print the summaries."""
    for stack in ENVIRONMENTS:
        try:
            plan = render_to_file(stack, out_dir / f"{stack}.json")
        except ConfigError as exc:
            raise _config_failure(exc) from None
        print_summary(stack, plan, out_dir / f"{stack}.json")


def main() -> None:  # pragma: no cover - console entry point
    app()
