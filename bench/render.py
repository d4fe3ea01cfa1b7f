"""Render time per stack: cold (a new process) and warm (same process), beside the cost of importing the
pulumi_aws modules the program uses — the floor no render can go under. Target: <= 2 s cold per stack.

`--mesh 2,10,50` adds the model mesh: a prod stack with N models (each pinned, with a last-known-good, SLOs and
its own contract), rendered and gated side by side in fresh processes (as `clinops gate prod` does: config checked,
engines started, render, gate), plus the time a bad model config takes to be refused: one model without a
contract, and a mesh past a key policy's quota. Targets: 50 models render + gate <= 20 s; refusal <= 5 s.
`--mesh-only` skips the per-stack table (it is slow on a loaded machine)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "staging", "prod")
COLD_RUNS = 3


def _timed_process(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mesh", default="", help="comma-separated model counts, e.g. 2,10,50")
    parser.add_argument("--mesh-only", action="store_true")
    args = parser.parse_args()
    if not args.mesh_only:
        stacks()
    if args.mesh:
        mesh([int(n) for n in args.mesh.split(",")])


def stacks() -> None:
    floor = statistics.median(
        _timed_process(
            "import pulumi, pulumi_aws as a; [getattr(a, m).__name__ for m in "
            "('ec2','s3','kms','iam','cloudwatch','cloudtrail','sagemaker','vpc')]; "
            "a.ec2.Vpc; a.s3.Bucket; a.sagemaker.Domain; a.vpc.SecurityGroupEgressRule"
        )
        for _ in range(COLD_RUNS)
    )
    python = statistics.median(_timed_process("pass") for _ in range(COLD_RUNS))
    sys.path.insert(0, str(ROOT))
    from infra.render import render

    render("dev")  # load everything once
    print(f"{'stack':<8} {'cold s (median of 3)':>22} {'warm s':>8} {'resources':>10}")
    for stack in STACKS:
        cold = statistics.median(
            _timed_process(f"from infra.render import render; render({stack!r})") for _ in range(COLD_RUNS)
        )
        start = time.perf_counter()
        plan = render(stack)
        warm = time.perf_counter() - start
        print(f"{stack:<8} {cold:>22.2f} {warm:>8.2f} {len(plan['steps']):>10}")
    print(
        f"reference: python startup {python:.2f} s; importing the pulumi_aws modules used {floor:.2f} s "
        "(cold floor for any render); target <= 2.00 s cold"
    )


CONTRACTS = ROOT / "pipelines" / "contracts"
_MESH_RUN = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from clinops.config import ConfigError
from infra.render import dumps, render
from policies.gate import run_gate, start_engines
from policies.plan import parse_plan
t1, c1 = time.perf_counter(), time.process_time()
# as `clinops gate prod` does it: the config checked, the engines started, the render, the gate
try:
    plan = render("prod", root=Path(sys.argv[1]), on_valid=start_engines)
except ConfigError as exc:
    print(json.dumps({"refused": time.perf_counter() - t0, "problems": exc.problems[:2]})); sys.exit(0)
t2, c2 = time.perf_counter(), time.process_time()
# judged as the mesh stack file it was rendered from (the gate reads Pulumi.prod.yaml under that root)
verdict = run_gate(parse_plan(plan), dumps(plan), stack="prod", stack_root=Path(sys.argv[1]))
t3, c3 = time.perf_counter(), time.process_time()
node = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"imports": t1 - t0, "render": t2 - t1, "gate": t3 - t2, "render_cpu": c2 - c1, "gate_cpu": c3 - c2,
                  "node_cpu": node.ru_utime + node.ru_stime, "resources": len(plan["steps"]),
                  "passed": verdict.passed, "engines": {r.engine: r.seconds for r in verdict.reports},
                  "blocking": [f"{j.result.rule_id} {j.result.urn.split('::')[-1]}" for j in verdict.blocking()][:3]}))
"""
RENDER_GATE_TARGET_S = 20.0  # issue 15: 50 models render + gate
REFUSAL_TARGET_S = 5.0  # issue 15: a bad model config refused
OVER_QUOTA_MODELS = 140  # past the logs key's 32 KB policy quota (infra.stack.check_quotas)


def mesh_stack_file(count: int, with_contracts: int) -> str:
    """Pulumi.prod.yaml with `count` models, each pinned (v2) with a last-known-good (v1)."""
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    head = text[: text.index("  clinops:models:")]
    models = ["  clinops:models:"]
    for i in range(count):
        name = f"mesh-model-{i:02d}" if i < with_contracts else f"mesh-nocontract-{i:02d}"
        arn = f"arn:aws:sagemaker:us-east-1:111111111111:model-package/{name}"
        models += [
            f"    - name: {name}",
            f"      description: synthetic mesh model {i} for the render benchmark",
            f"      packageArn: {arn}/2",
            f"      lastKnownGoodPackageArn: {arn}/1",
            "      serving:",
            "        minInstances: 2",
            "        maxInstances: 4",
        ]
    return head + "\n".join(models) + "\n"


@contextlib.contextmanager
def mesh_contracts(count: int) -> Iterator[None]:
    """Feature contracts for mesh-model-00.. where the program looks for them (the repository), removed after."""
    template = (CONTRACTS / "readmission-risk.yaml").read_text()
    written = []
    try:
        for i in range(count):
            path = CONTRACTS / f"mesh-model-{i:02d}.yaml"
            path.write_text(re.sub(r"(?m)^name: .*$", f"name: mesh-model-{i:02d}", template, count=1))
            written.append(path)
        yield
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def mesh_root(parent: Path, count: int, with_contracts: int | None = None) -> Path:
    """A project folder holding Pulumi.yaml and a prod stack file of `count` mesh models."""
    root = parent / f"mesh-{count}-{with_contracts}"
    root.mkdir()
    (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (root / "Pulumi.prod.yaml").write_text(mesh_stack_file(count, count if with_contracts is None else with_contracts))
    return root


def _run_mesh(root: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _MESH_RUN, str(root)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mesh run for {root.name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mesh(sizes: list[int]) -> None:
    """Render + gate of each mesh size in a fresh process, side by side, with the per-model increment between
    sizes (linear growth shows as a steady increment) and the ratio to the smallest size measured in this same
    run (the machine is shared: ratios travel between runs, seconds do not). CPU seconds are this process's;
    node s is the CPU of the Node engines (IAM simulation; cdk-nag's jsii process when it has exited)."""
    sizes = sorted(sizes)
    top = max(sizes)
    rows: list[tuple[int, dict]] = []
    with mesh_contracts(max(top, OVER_QUOTA_MODELS)), tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'models':>6} {'resources':>9} {'render s':>9} {'gate s':>7} {'total s':>8} {'target s':>8} "
            f"{'render cpu':>10} {'gate cpu':>8} {'node s':>6} {'x smallest':>10} {'gate':>5}"
        )
        for count in sizes:
            r = _run_mesh(mesh_root(Path(tmp), count))
            if "refused" in r:
                print(f"{count:>6} refused in {r['refused']:.2f} s: {r['problems']}")
                continue
            rows.append((count, r))
            total = r["render"] + r["gate"]
            base = rows[0][1]["render"] + rows[0][1]["gate"]
            target = f"{RENDER_GATE_TARGET_S:.0f}" if count == 50 else "-"
            verdict = "pass" if r["passed"] else "FAIL"
            print(
                f"{count:>6} {r['resources']:>9} {r['render']:>9.2f} {r['gate']:>7.2f} {total:>8.2f} {target:>8} "
                f"{r['render_cpu']:>10.2f} {r['gate_cpu']:>8.2f} {r['node_cpu']:>6.2f} {total / base:>10.2f} "
                f"{verdict:>5}" + (f"  blocking: {r['blocking']}" if not r["passed"] else "")
            )
        for (n0, a), (n1, b) in itertools.pairwise(rows):
            per = {k: (b[k] - a[k]) / (n1 - n0) for k in ("render", "gate", "render_cpu", "gate_cpu", "resources")}
            print(
                f"per model {n0}->{n1}: +{per['resources']:.1f} resources, render +{per['render']:.2f} s "
                f"(cpu +{per['render_cpu']:.2f}), gate +{per['gate']:.2f} s (cpu +{per['gate_cpu']:.2f})"
            )
        if rows:
            count, r = rows[-1]
            engines = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["engines"].items(), key=lambda kv: -kv[1]))
            print(f"engines at {count} models (s; cdk-nag and access run in threads beside the others): {engines}")
        bad = _run_mesh(mesh_root(Path(tmp), top, top - 1))
        print(
            f"bad config ({top} models, one without a contract): refused in {bad.get('refused', -1):.2f} s "
            f"including imports, target <= {REFUSAL_TARGET_S:.0f} s; 50 models render + gate target "
            f"<= {RENDER_GATE_TARGET_S:.0f} s"
        )
        over = _run_mesh(mesh_root(Path(tmp), OVER_QUOTA_MODELS))
        print(
            f"too large a mesh ({OVER_QUOTA_MODELS} models, a key policy past KMS's quota): refused in "
            f"{over.get('refused', -1):.2f} s including imports, target <= {REFUSAL_TARGET_S:.0f} s"
        )


if __name__ == "__main__":
    main()
