"""`make demo`: the main job end to end on embedded defaults, offline.

render every stack → gate every stack (evidence bundles) → more steps join as the release path lands.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def render_and_gate(out_dir: Path, console: Console) -> bool:
    from clinops.cli import print_summary, render_to_file
    from clinops.config import ENVIRONMENTS
    from clinops.render import dumps
    from policies.bundle import write_bundle
    from policies.gate import run_gates
    from policies.plan import parse_plan
    from policies.view import print_verdict

    docs = {stack: render_to_file(stack, out_dir / f"{stack}.json") for stack in ENVIRONMENTS}
    for stack, doc in docs.items():
        print_summary(stack, doc, out_dir / f"{stack}.json")
    verdicts = run_gates([(parse_plan(doc), dumps(doc)) for doc in docs.values()])
    for verdict in verdicts:
        print_verdict(console, verdict)
        bundle = out_dir / f"gate-{verdict.stack}"
        write_bundle(verdict, bundle)
        console.print(
            f"evidence bundle for {verdict.stack}: {bundle}/ (report.md, findings.json, findings.sarif, "
            "junit.xml, plan.sha256)"
        )
    return all(v.passed for v in verdicts)
