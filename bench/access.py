"""The access engine (offline IAM evaluation) on an N-model prod mesh, beside a reference version of the engine
measured in the same run: by default the last commit before the policy-table transport (one inline JSON batch,
every simulation repeating its policies; one ICU collator per string comparison in Node).

The mesh plan is rendered once; then the reference and the current engine judge it in fresh processes,
alternating (`--runs`, best of each counts: the machine is shared). Each row: simulations sent, distinct
policies, bytes piped to Node, Python CPU (the engine's process, all threads), Node CPU (the evaluator process),
wall, and a digest of every result (rule id, URN, status, message): equal digests mean identical verdicts.

    python bench/access.py [--models 50] [--runs 2] [--reference REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import mesh_contracts, mesh_root  # noqa: E402  (bench/render.py: the mesh every bench uses)

# The parent of the change that sent policies as a table: the transport the reference row measures.
REFERENCE = "ce5046d"
NODE_MODULES = ROOT / "policies" / "engines" / "iam" / "node_modules"

_RENDER = """
import sys
from pathlib import Path
from infra.render import dumps, render
Path(sys.argv[2]).write_text(dumps(render("prod", root=Path(sys.argv[1]))))
"""

# Runs in the engine's own folder (cwd first on sys.path), so `policies` is the version under test.
_JUDGE = """
import hashlib, json, resource, subprocess, sys, time
from pathlib import Path
sent = []
communicate = subprocess.Popen.communicate
def recording(self, input=None, timeout=None):
    if input is not None:
        sent.append(input)
    return communicate(self, input, timeout)
subprocess.Popen.communicate = recording
from policies.engines import access_engine
from policies.gate import bind_stack
from policies.plan import parse_plan
plan = bind_stack(parse_plan(json.loads(Path(sys.argv[1]).read_text())), "prod", Path(sys.argv[2]))
self0, node0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.perf_counter()
(report,) = access_engine.scan_plans([plan])
wall = time.perf_counter() - t0
self1, node1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
payload = json.loads(sent[-1])
simulations = payload if isinstance(payload, list) else payload["simulations"]
if isinstance(payload, list):
    lists = ("identityPolicies", "permissionBoundaryPolicies", "vpcEndpointPolicies")
    documents = [e["policy"] for s in payload for f in lists for e in s.get(f) or []]
    documents += [s["resourcePolicy"] for s in payload if s.get("resourcePolicy")]
    policies = len({json.dumps(d, sort_keys=True) for d in documents})
else:
    policies = len(payload["policies"])
results = sorted([r.rule_id, r.urn, r.status, r.message] for r in report.results)
print(json.dumps({
    "python": self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime,
    "node": node1.ru_utime + node1.ru_stime - node0.ru_utime - node0.ru_stime,
    "wall": wall, "bytes": len(sent[-1].encode()), "simulations": len(simulations), "policies": policies,
    "results": len(results), "failed": sum(r[2] == "failed" for r in results),
    "digest": hashlib.sha256(json.dumps(results).encode()).hexdigest()[:12],
}))
"""


def _reference_tree(rev: str, parent: Path) -> Path:
    """The `policies` package at `rev`, with the installed evaluator linked in (its lock is unchanged)."""
    archive = subprocess.run(["git", "archive", rev, "policies"], cwd=ROOT, check=True, capture_output=True).stdout
    folder = parent / f"reference-{rev}"
    folder.mkdir()
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "policies" / "engines" / "iam" / "node_modules").symlink_to(NODE_MODULES.resolve())
    return folder


def _judge(code_root: Path, plan_file: Path, stack_root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # everything but `policies` from this checkout
    done = subprocess.run(
        [sys.executable, "-c", _JUDGE, str(plan_file), str(stack_root)],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"access engine run in {code_root} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--reference", default=REFERENCE, help="git revision of the reference engine")
    args = parser.parse_args()
    with mesh_contracts(args.models), tempfile.TemporaryDirectory() as tmp:
        stack_root = mesh_root(Path(tmp), args.models)
        plan_file = Path(tmp) / "plan.json"
        subprocess.run([sys.executable, "-c", _RENDER, str(stack_root), str(plan_file)], cwd=ROOT, check=True)
        versions = {f"reference {args.reference}": _reference_tree(args.reference, Path(tmp)), "current": ROOT}
        best: dict[str, dict] = {}
        for _ in range(args.runs):
            for label, code_root in versions.items():
                load = os.getloadavg()[0]
                row = _judge(code_root, plan_file, stack_root) | {"load": load}
                if label not in best or row["python"] + row["node"] < best[label]["python"] + best[label]["node"]:
                    best[label] = row
    print(f"access engine on a {args.models}-model prod mesh, best of {args.runs} (by CPU), alternating:")
    print(
        f"{'version':<18} {'sims':>5} {'policies':>8} {'MB sent':>7} {'python s':>8} {'node s':>6} {'cpu s':>6} "
        f"{'wall s':>6} {'load':>5} {'results':>7} {'failed':>6} {'digest':>12}"
    )
    for label, r in best.items():
        print(
            f"{label:<18} {r['simulations']:>5} {r['policies']:>8} {r['bytes'] / 1e6:>7.2f} {r['python']:>8.2f} "
            f"{r['node']:>6.2f} {r['python'] + r['node']:>6.2f} {r['wall']:>6.2f} {r['load']:>5.2f} "
            f"{r['results']:>7} {r['failed']:>6} {r['digest']:>12}"
        )
    digests = {r["digest"] for r in best.values()}
    print("results identical" if len(digests) == 1 else "RESULTS DIFFER between the versions")


if __name__ == "__main__":
    main()
