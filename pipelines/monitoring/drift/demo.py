"""The drift step of `make demo`: a clean week and a week after the lab switched creatinine to umol/L.

Both windows are scored by the model, written as SageMaker data capture (one as CSV, one as BASE64, as an
endpoint would store them), read back and judged against the model's training baseline. The clean window must
come out `no-drift` and the unit change must be caught, explained (contract range, alternate unit) and shown.
With no bundle given, a small model is trained on generated data with the pipeline's own training code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipelines.bundle import Bundle, read_bundle
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.data.synthetic import Injections, generate_readmission
from pipelines.monitoring.drift.baseline import load_baseline
from pipelines.monitoring.drift.detect import DriftResult, compare
from pipelines.monitoring.drift.report import write_html, write_json
from pipelines.monitoring.drift.shard import summarize_batch
from pipelines.monitoring.drift.simulate import Encoding, write_capture
from pipelines.monitoring.drift.sources import read_current
from pipelines.settings import TrainingSettings
from pipelines.steps.train import features, save, train

SCENARIOS: tuple[tuple[str, Injections | None, Encoding], ...] = (
    ("clean", None, "CSV"),
    ("lab-unit-change", Injections(unit_change="creatinine", unit_change_share=1.0), "BASE64"),
)


def demo_bundle(folder: Path, rows: int = 4000, seed: int = 3) -> Bundle:
    """A small model trained by the pipeline's training step (no validation or gates: demo only)."""
    contract = load_contract(builtin_contract_path("readmission-risk"))
    table = generate_readmission(rows, seed=seed)
    cut = int(rows * 0.7)
    settings = TrainingSettings(max_iter=60)
    trained = train(table.iloc[:cut], table.iloc[cut:], contract, settings)
    save(
        trained,
        table.iloc[:cut],
        contract,
        settings,
        folder,
        dataset_sha256="sha256:" + "0" * 64,
        trained_at=datetime(2025, 6, 30, tzinfo=UTC),
    )
    return read_bundle(folder)


def run_demo(out_dir: Path, bundle_dir: Path | None = None, rows: int = 2000) -> dict[str, DriftResult]:
    if bundle_dir is None:
        bundle_dir = out_dir / "stand-in-bundle"  # under OUT, not a temporary folder nobody removes
        bundle = demo_bundle(bundle_dir)
    else:
        bundle = read_bundle(bundle_dir)
    baseline = load_baseline(bundle_dir)
    results = {}
    for index, (name, injection, encoding) in enumerate(SCENARIOS):
        # discharge dates run in order, so the generator's unit switch hits the newest admissions; here all of them
        table = generate_readmission(rows, seed=100 + index, injections=injection)
        x = features(table, bundle.contract)
        scores = bundle.model.predict_proba(x)[:, 1]
        capture = out_dir / name / "capture"
        write_capture(x, scores, capture, baseline.columns, encoding=encoding, variant="AllTraffic")
        batch = read_current(str(capture), baseline.columns)
        ((variant, summary),) = summarize_batch(batch, baseline).items()
        result = compare(baseline, summary, variant=variant, malformed=dict(batch.malformed))
        write_json(result, out_dir / name / "drift.json", baseline.contract)
        write_html(result, out_dir / name / "drift-report.html", baseline.contract)
        results[name] = result
    return results
