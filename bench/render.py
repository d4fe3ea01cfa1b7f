"""Render time per stack: cold (a new process) and warm (same process), beside the cost of importing the
pulumi_aws modules the program uses — the floor no render can go under. Target: <= 2 s cold per stack.

`--mesh 2,10,50` adds the model mesh: a prod stack with N models (each pinned, with a last-known-good, SLOs and
its own contract), rendered and gated side by side in fresh processes, plus the time a bad model config (one
model without a contract) takes to be refused. Targets: 50 models render + gate <= 20 s; refusal <= 5 s.
`--mesh-only` skips the per-stack table (it is slow on a loaded machine)."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
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
import json, sys, time
t0 = time.perf_counter()
from clinops.config import ConfigError
from infra.render import dumps, render
from policies.gate import run_gate
from policies.plan import parse_plan
t1 = time.perf_counter()
try:
    plan = render("prod", root=__import__("pathlib").Path(sys.argv[1]))
except ConfigError as exc:
    print(json.dumps({"refused": time.perf_counter() - t0, "problems": exc.problems[:2]})); sys.exit(0)
t2, c2 = time.perf_counter(), time.process_time()
# judged as the mesh stack file it was rendered from (the gate reads Pulumi.prod.yaml under that root)
verdict = run_gate(parse_plan(plan), dumps(plan), stack="prod", stack_root=__import__("pathlib").Path(sys.argv[1]))
t3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({"imports": t1 - t0, "render": t2 - t1, "gate": t3 - t2, "resources": len(plan["steps"]),
                  "passed": verdict.passed, "cpu": c3}))
"""


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


def _run_mesh(root: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MESH_RUN, str(root)], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def mesh(sizes: list[int]) -> None:
    top = max(sizes)
    template = (CONTRACTS / "readmission-risk.yaml").read_text()
    written = []
    try:
        for i in range(top):  # the mesh models need contracts where the program looks for them
            path = CONTRACTS / f"mesh-model-{i:02d}.yaml"
            path.write_text(re.sub(r"(?m)^name: .*$", f"name: mesh-model-{i:02d}", template, count=1))
            written.append(path)
        print(f"{'models':>6} {'resources':>9} {'render s':>9} {'gate s':>7} {'total s':>8} {'cpu s':>6} {'gate':>5}")
        with tempfile.TemporaryDirectory() as tmp:
            for count in sizes:
                root = Path(tmp) / f"mesh-{count}"
                root.mkdir()
                (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
                (root / "Pulumi.prod.yaml").write_text(mesh_stack_file(count, count))
                r = _run_mesh(root)
                if "refused" in r:
                    print(f"{count:>6} refused in {r['refused']:.2f} s: {r['problems']}")
                    continue
                total = r["render"] + r["gate"]
                verdict = "pass" if r["passed"] else "FAIL"
                print(
                    f"{count:>6} {r['resources']:>9} {r['render']:>9.2f} {r['gate']:>7.2f} {total:>8.2f} {verdict:>5}"
                )
            bad = Path(tmp) / "mesh-bad"
            bad.mkdir()
            (bad / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
            (bad / "Pulumi.prod.yaml").write_text(mesh_stack_file(top, top - 1))
            r = _run_mesh(bad)
            print(
                f"bad config ({top} models, one without a contract): refused in {r.get('refused', -1):.2f} s "
                "including imports; targets: 50 models render + gate <= 20 s, refusal <= 5 s"
            )
    finally:
        for path in written:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
