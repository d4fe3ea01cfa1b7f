"""Cold wall time of the whole gate over the three stacks (a new process: imports, jsii/Node start, every
engine), each engine's share, beside a plain `checkov -f` CLI run over the same Terraform views.
Target: the three-stack gate in <= 10 s cold on a 2-core machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "staging", "prod")

_GATE = """
import json, sys, time
t0 = time.perf_counter()
from policies.gate import run_gates
from policies.plan import load_plan
plans = [load_plan(__import__("pathlib").Path(p)) for p in sys.argv[1:]]
verdicts = run_gates(plans)
shares = {}
for v in verdicts:
    for r in v.reports:
        shares[r.engine] = shares.get(r.engine, 0.0) + r.seconds
print(json.dumps({"wall": time.perf_counter() - t0, "shares": shares, "passed": [v.passed for v in verdicts],
                  "results": sum(len(v.judged) for v in verdicts)}))
"""


def main() -> None:
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "True", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    sys.path.insert(0, str(ROOT))
    from infra.render import dumps, render
    from policies.engines.tfview import write_tf_view
    from policies.plan import parse_plan

    work = Path(tempfile.mkdtemp(prefix="clinops-bench-gate-"))
    plan_files, views = [], []
    for stack in STACKS:
        doc = render(stack)
        (work / f"{stack}.json").write_text(dumps(doc))
        plan_files.append(str(work / f"{stack}.json"))
        views.append(work / f"{stack}.tf.json")
        write_tf_view(parse_plan(doc), views[-1])

    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _GATE, *plan_files], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    process_wall = time.perf_counter() - start
    gate = json.loads(out.stdout.strip().splitlines()[-1])

    checkov_cli = Path(sys.executable).parent / "checkov"
    start = time.perf_counter()
    args = [str(checkov_cli), "--framework", "terraform_plan", "--skip-download", "--quiet", "--compact", "-o", "json"]
    for view in views:
        args += ["-f", str(view)]
    subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    checkov_wall = time.perf_counter() - start

    print(
        f"three-stack gate, cold process: {process_wall:6.2f} s wall ({gate['wall']:.2f} s after interpreter start), "
        f"{gate['results']} results, passed={gate['passed']}"
    )
    for engine, seconds in sorted(gate["shares"].items()):
        print(f"  {engine:<8} {seconds:6.2f} s (engine time incl. its start-up; cdk-nag overlaps the others)")
    print(f"reference: plain `checkov -f` CLI over the same three Terraform views: {checkov_wall:6.2f} s wall")
    print("target: <= 10.00 s cold for the whole three-stack gate")


if __name__ == "__main__":
    main()
