"""Wall time per step of `clinops pipeline run --local` on 100k synthetic admissions. Target: <= 60 s end to end.

Runs the pipeline in a fresh process (as the CLI does: imports, the MLflow store and the first model logging
are part of the cost) against a fresh output directory, and reports each step. `--rows`, `--store warm` (reuse
an existing MLflow store, as a second run would) and `--threads` change the set-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0
RUNNER = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from pipelines.local import run_local
from pipelines.settings import PipelineSettings, TrainingSettings
imported = time.perf_counter() - started
out, rows, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
settings = PipelineSettings(training=TrainingSettings(threads=threads))
result = run_local(out_dir=out, rows=rows, seed=7, settings=settings)
print(json.dumps({"import": imported, "timings": result.timings, "verdict": result.verdict,
                  "auc": result.evaluation["candidate"]["auc"] if result.evaluation else None,
                  "total": time.perf_counter() - started}))
"""


def _run(out: Path, rows: int, threads: int) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(out), str(rows), str(threads)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process"] = time.perf_counter() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for training (0 = all cores)")
    parser.add_argument("--store", choices=("fresh", "warm"), default="fresh", help="MLflow store: new or existing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clinops-bench-") as scratch:
        out = Path(scratch)
        if args.store == "warm":
            _run(out, 1000, args.threads)  # creates the store and a first registered version
        report = _run(out, args.rows, args.threads)
    # The synthetic extract is generated and written before the first step; it is the remainder of "total".
    steps = {"python start + imports": report["import"], **report["timings"]}
    steps["extract: generate, write, read, hash"] = report["total"] - sum(steps.values())
    print(f"{args.rows} rows, {args.store} MLflow store, {args.threads} training thread(s)")
    print(f"{'step':<40} {'wall s':>8}")
    for name, seconds in steps.items():
        print(f"{name:<40} {seconds:>8.2f}")
    print(
        f"{'end to end (process)':<40} {report['process']:>8.2f}   target <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if report['process'] <= TARGET_SECONDS else 'MISSED'}"
    )
    print(f"verdict {report['verdict']}, test AUC {report['auc']:.3f}")


if __name__ == "__main__":
    main()
