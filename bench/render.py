"""Render time per stack: cold (a new process) and warm (same process), beside the cost of importing the
pulumi_aws modules the program uses — the floor no render can go under. Target: <= 2 s cold per stack."""

from __future__ import annotations

import statistics
import subprocess
import sys
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


if __name__ == "__main__":
    main()
