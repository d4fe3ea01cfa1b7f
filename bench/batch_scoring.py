"""`clinops score --local` on 1,000,000 rows: wall time, CPU time and peak memory. Target: at most 60 s on the
2-core dev machine.

The extract is the synthetic readmission generator's table (100,000 rows repeated to the requested count, with
an admission id per row, PHI columns and the label included, as a hospital extract would carry them); the model
is a pipeline run's bundle (MODEL as `clinops serve --local` takes it; by default one is trained on 3,000 rows).

    .venv/bin/python bench/batch_scoring.py [--rows 1000000] [--workers N] [--model MODEL]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from serving.container.batch import score_file  # noqa: E402 - the repo root goes on sys.path first
from serving.container.settings import available_cpus  # noqa: E402

BLOCK_ROWS = 100_000


def write_extract(path: Path, rows: int) -> None:
    from pipelines.data.synthetic import generate_readmission

    block = generate_readmission(min(rows, BLOCK_ROWS), seed=11)
    block.insert(0, "admission_id", "")
    with path.open("w") as out:
        written = 0
        while written < rows:
            part = block.head(min(BLOCK_ROWS, rows - written)).copy()
            part["admission_id"] = [f"A{written + i:08d}" for i in range(len(part))]
            part.to_csv(out, index=False, header=written == 0)
            written += len(part)


def bundle(model: str | None, work: Path) -> Path:
    if model:
        from serving.container.locate import locate

        return locate(model, out_dir=ROOT / "out", tracking_uri=None, scratch=work / "located").path
    from tests.serving.container.conftest import write_pipeline_bundle

    return write_pipeline_bundle(work / "model", work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clinops-batch-bench-"))
    try:
        model_dir = bundle(args.model, work)
        extract = work / "extract.csv"
        write_extract(extract, args.rows)
        load_before = os.getloadavg()
        cpu_before = _cpu()
        started = time.perf_counter()
        summary = score_file(model_dir, extract, work / "scores.csv", id_columns=["admission_id"], workers=args.workers)
        wall = time.perf_counter() - started
        cpu = _cpu() - cpu_before
        print(
            f"rows: {summary.rows:,} ({extract.stat().st_size / 1e6:.0f} MB CSV), scored {summary.scored:,}, "
            f"not scored {summary.rejected:,}"
        )
        print(
            f"workers: {args.workers}; wall {wall:.1f} s ({summary.rows / wall:,.0f} rows/s); CPU {cpu:.1f} s "
            f"(all processes); peak RSS {_peak_mb():.0f} MB (largest process)"
        )
        print(
            f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
        )
        print(f"target <= 60 s: {'met' if wall <= 60 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return max(own.ru_maxrss, children.ru_maxrss) / 1024


if __name__ == "__main__":
    main()
