"""Drift detection at scale: clinops beside Evidently's DataDriftPreset on the same 1M x 30 table, same run.

Data: a reference and a current table of 1,000,000 rows and 30 features each (26 numeric of several shapes,
4 categorical, some missing values), written once to parquet. The current table carries four injected shifts:
a 0.2 SD mean shift, a x1.3 widening of the spread around the mean, a x88.4 unit change (creatinine mg/dL ->
umol/L) and a frequency change of one category. Everything else is drawn from the same distributions.

clinops runs in this process: its baseline is computed once from the reference table (at training time in
production, so timed separately) and the measured work is reading the current parquet plus detection. The
ratio against Evidently is printed both without and with the baseline build (Evidently has no such step: it
reads both raw tables every run), so neither reading flatters clinops. Evidently
0.7 runs in a subprocess from a separate virtualenv (it needs pandas < 3; clinops' .venv has pandas 3):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow

The script creates that venv on first use (`--no-evidently` skips it). Peak memory is the process's peak
resident set (VmHWM), reset just before the measured work for clinops, whole-process for Evidently.

    .venv/bin/python bench/drift.py [--rows 1000000] [--no-evidently]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.monitoring.drift.baseline import parse_baseline  # noqa: E402 - the repo root goes on sys.path first
from pipelines.monitoring.drift.detect import detect_drift  # noqa: E402

BENCH_VENV = ROOT / ".venv-bench"
SHIFTED = {"mean_shift_0_2sd", "spread_x1_3", "creatinine_unit_x88_4", "payer_mix_change"}
PAYER_LEVELS = ["Medicare", "Commercial", "Medicaid", "Self-pay"]
PAYER_REFERENCE, PAYER_SHIFTED = [0.40, 0.30, 0.20, 0.10], [0.25, 0.30, 0.20, 0.25]
CATEGORIES = {
    "payer_mix_change": PAYER_LEVELS,
    "sex": ["F", "M"],
    "admission_type": ["Emergency", "Urgent", "Elective"],
    "disposition": ["Home", "Home health", "SNF", "Rehab", "AMA", "Hospice"],
}


def _numeric_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """26 numeric columns: normal, lognormal, gamma, counts, bounded and discrete shapes, some with gaps."""
    columns: dict[str, np.ndarray] = {
        "mean_shift_0_2sd": rng.normal(0.0, 1.0, n),
        "spread_x1_3": rng.normal(50.0, 10.0, n),
        "creatinine_unit_x88_4": np.round(rng.lognormal(np.log(0.95), 0.3, n), 2),
    }
    for i in range(23):
        shape = i % 6
        if shape == 0:
            values = rng.normal(100 + i, 15, n)
        elif shape == 1:
            values = rng.lognormal(1.0, 0.5, n)
        elif shape == 2:
            values = rng.gamma(2.0, 3.0, n)
        elif shape == 3:
            values = rng.poisson(2.5, n).astype(float)
        elif shape == 4:
            values = rng.uniform(0, 1, n)
        else:
            values = np.round(rng.normal(139, 3.5, n))
        if i % 4 == 0:  # a lab that is often not measured
            values = np.where(rng.random(n) < 0.3, np.nan, values)
        columns[f"num_{i:02d}"] = values
    return columns


def make_table(n: int, seed: int, *, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = _numeric_columns(rng, n)
    if shifted:
        columns["mean_shift_0_2sd"] = columns["mean_shift_0_2sd"] + 0.2
        columns["spread_x1_3"] = 50.0 + 1.3 * (columns["spread_x1_3"] - 50.0)
        columns["creatinine_unit_x88_4"] = np.round(columns["creatinine_unit_x88_4"] * 88.4, 0)
    payer_p = PAYER_SHIFTED if shifted else PAYER_REFERENCE
    columns_cat = {
        "payer_mix_change": rng.choice(PAYER_LEVELS, n, p=payer_p),
        "sex": rng.choice(CATEGORIES["sex"], n, p=[0.53, 0.47]),
        "admission_type": rng.choice(CATEGORIES["admission_type"], n, p=[0.7, 0.15, 0.15]),
        "disposition": rng.choice(CATEGORIES["disposition"], n, p=[0.5, 0.2, 0.15, 0.08, 0.02, 0.05]),
    }
    return pd.DataFrame({**columns, **columns_cat})


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current resident set


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_clinops(reference_path: Path, current_path: Path) -> dict[str, Any]:
    from pipelines.monitoring.drift.baseline import baseline_from_frame

    started = time.perf_counter()  # the build's time includes reading the reference, as Evidently's run does
    reference = pd.read_parquet(reference_path)
    numeric = [c for c in reference.columns if c not in CATEGORIES]
    doc = baseline_from_frame(reference, numeric, CATEGORIES)
    baseline_seconds = time.perf_counter() - started
    baseline = parse_baseline(json.loads(json.dumps(doc)), source="bench reference")  # as stored: via JSON
    del reference
    gc.collect()
    _reset_peak()
    started, cpu_started = time.perf_counter(), time.process_time()
    current = pd.read_parquet(current_path)
    read_seconds = time.perf_counter() - started
    result = detect_drift(baseline, current)
    total_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "tool": "clinops",
        "read_s": read_seconds,
        "compute_s": total_seconds - read_seconds,
        "total_s": total_seconds,
        "cpu_s": cpu_seconds,
        "peak_rss_mb": _peak_mb(),
        "flagged": sorted(result.drifted),
        "baseline_s": baseline_seconds,
        "verdict": result.verdict,
    }


EVIDENTLY_SCRIPT = """
import json, resource, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

reference_path, current_path, categorical = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
read_seconds = time.perf_counter() - started
numeric = [c for c in reference.columns if c not in categorical]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                           Dataset.from_pandas(reference, data_definition=definition))
total, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
flagged, methods = [], set()
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config.get("type", "").endswith("ValueDrift"):
        methods.add(config["method"])
        p_value = "p_value" in config["method"].lower()
        drifted = metric["value"] < config["threshold"] if p_value else metric["value"] >= config["threshold"]
        if drifted:
            flagged.append(config["column"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tool": "evidently", "read_s": read_seconds, "compute_s": total - read_seconds, "total_s": total,
                  "cpu_s": cpu_seconds, "peak_rss_mb": peak, "flagged": sorted(flagged), "methods": sorted(methods)}))
"""


def ensure_bench_venv() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import evidently"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "evidently==0.7.*", "pandas<3", "pyarrow"], check=True
        )
    return python


def run_evidently(reference_path: Path, current_path: Path) -> dict[str, Any]:
    python = ensure_bench_venv()
    version = subprocess.run(
        [str(python), "-c", "import evidently; print(evidently.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    done = subprocess.run(
        [str(python), "-c", EVIDENTLY_SCRIPT, str(reference_path), str(current_path), json.dumps(list(CATEGORIES))],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"Evidently failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"version": version}


def _row(r: dict[str, Any]) -> str:
    others = sorted(set(r["flagged"]) - SHIFTED)
    missed = sorted(SHIFTED - set(r["flagged"]))
    times = f"{r['total_s']:>9.2f} {r['compute_s']:>9.2f} {r['cpu_s']:>9.2f}"
    return (
        f"{r['tool']:<10} {times} {r['peak_rss_mb']:>9.0f}   "
        f"{len(r['flagged'])} flagged; missed {missed or 'none'}; false {others or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-evidently", action="store_true", help="clinops only (no .venv-bench needed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clinops-drift-bench-") as tmp:
        reference_path, current_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        make_table(args.rows, seed=1, shifted=False).to_parquet(reference_path, index=False)
        make_table(args.rows, seed=2, shifted=True).to_parquet(current_path, index=False)
        gc.collect()
        results = [run_clinops(reference_path, current_path)]
        if not args.no_evidently:
            results.append(run_evidently(reference_path, current_path))
    print(f"{args.rows:,} rows x 30 features; shifted: {', '.join(sorted(SHIFTED))}")
    print(f"clinops baseline build (read reference + bins; once, at training time): {results[0]['baseline_s']:.2f} s")
    print(f"{'tool':<10} {'total s':>9} {'detect s':>9} {'CPU s':>9} {'peak MB':>9}   flagged columns")
    for r in results:
        print(_row(r))
    clin = results[0]
    with_baseline = clin["total_s"] + clin["baseline_s"]
    print(
        f"clinops read + detect {clin['total_s']:.2f} s; with the baseline build {with_baseline:.2f} s "
        "(the build runs once per model at training time, but a one-off comparison pays it)"
    )
    if len(results) == 2:
        evid = results[1]
        print(
            f"Evidently {evid['version']} ({', '.join(evid['methods'])}) vs clinops: "
            f"{evid['total_s'] / clin['total_s']:.1f}x the wall time without the baseline build (read + detect), "
            f"{evid['total_s'] / with_baseline:.1f}x with it (read + baseline + detect), "
            f"{evid['compute_s'] / clin['compute_s']:.1f}x detection alone, "
            f"{evid['compute_s'] / (clin['compute_s'] + clin['baseline_s']):.1f}x detection + baseline build, "
            f"{evid['cpu_s'] / clin['cpu_s']:.1f}x the CPU time (without the build), "
            f"{evid['peak_rss_mb'] / clin['peak_rss_mb']:.1f}x the peak memory; "
            f"same flagged columns: {clin['flagged'] == evid['flagged']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
