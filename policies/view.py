"""Terminal view of a verdict: failures grouped by control and severity, with the resource, rule and fix."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from policies import controls
from policies.bundle import verdict_label
from policies.gate import Verdict
from policies.model import SEVERITY_ORDER


def print_verdict(console: Console, v: Verdict) -> None:
    engines = Table(title=f"gate {v.stack}: {v.plan_hash[:19]}…", show_lines=False)
    for col in ("engine", "results", "passed", "failed", "excepted", "types judged", "types unseen", "seconds"):
        engines.add_column(col, justify="right" if col != "engine" else "left")
    for report in v.reports:
        js = [j for j in v.judged if j.result.engine == report.engine]
        labels = [verdict_label(j) for j in js]
        seen = sum(1 for s in report.coverage.values() if s == "seen")
        engines.add_row(
            report.engine,
            str(len(js)),
            str(labels.count("pass")),
            str(labels.count("FAIL") + labels.count("advisory")),
            str(labels.count("excepted")),
            str(seen),
            str(len(report.coverage) - seen),
            f"{report.seconds:.2f}",
        )
    console.print(engines)
    failed = [j for j in v.judged if j.result.status == "failed" and not j.waiver]
    if failed:
        table = Table(title="failed checks", show_lines=True)
        for col in ("control", "severity", "resource", "engine / rule", "fix"):
            table.add_column(col, overflow="fold")
        key = lambda j: (j.result.controls[:1] or ("",), SEVERITY_ORDER[j.result.severity], j.result.urn)  # noqa: E731
        for j in sorted(failed, key=key):
            r = j.result
            control = ", ".join(f"§{c} {controls.TITLES.get(c, '')}" for c in r.controls)
            label = r.severity + ("" if r.mandatory else " (advisory)")
            table.add_row(
                control,
                label,
                f"{r.urn.split('::')[-1]} ({r.resource_type})",
                f"{r.engine} {r.rule_id}\n{r.message}",
                r.fix,
            )
        console.print(table)
    if v.waivers_in_force:
        console.print(f"{len(v.waivers_in_force)} exceptions in force (listed in the evidence bundle)")
    for w in v.unused_waivers:
        console.print(f"[yellow]unused exception:[/] {w.label()}")
    verdict = "[bold green]PASS[/]" if v.passed else f"[bold red]FAIL[/] ({len(v.blocking())} mandatory failures)"
    console.print(f"verdict for {v.stack}: {verdict}")
