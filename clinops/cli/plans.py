"""Writing a rendered plan and summarising it on the terminal (shared by `render`, `gate` and the demo)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table


def render_to_file(stack: str, out: Path, on_valid: Callable[[], None] | None = None) -> dict:
    """Render `stack` and write the plan; nothing is written when the config is invalid (`infra.render.render`
    runs `on_valid` once it is valid)."""
    from infra.render import dumps, render

    plan = render(stack, on_valid=on_valid)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(dumps(plan))
    tmp.replace(out)  # atomic: a reader never sees half a plan
    return plan


def print_summary(console: Console, stack: str, plan: dict, out: Path | None) -> None:
    from infra.render import summarize

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
