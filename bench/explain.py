"""Cost of "why this score": exact contributions (`pipelines.explain`) per row for the demo model, beside the
plain prediction of the same rows in the same run (scikit-learn's predict_proba and the container's compiled
scorer, which is what /invocations runs without explanations).

Model: the pipeline's candidate trained here with default settings on synthetic readmission data (the demo's
shape). Rows: synthetic, with missing values. One row at a time (a request) and a batch of 100 (card, drift).

    .venv/bin/python bench/explain.py [--rows 60] [--train-rows 4000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from pipelines.contracts import builtin_contract_path, load_contract  # noqa: E402
from pipelines.data.synthetic import generate_readmission  # noqa: E402
from pipelines.explain import explainer_for  # noqa: E402
from pipelines.settings import TrainingSettings  # noqa: E402
from pipelines.steps import split as split_step  # noqa: E402
from pipelines.steps import train as train_step  # noqa: E402
from pipelines.steps.validate import validate  # noqa: E402
from serving.container.scoring import EstimatorScorer, build_explainer, compile_scorer  # noqa: E402


def _per_call_ms(call: Callable[[int], object], count: int) -> tuple[float, float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--train-rows", type=int, default=4000)
    args = parser.parse_args()
    contract = load_contract(builtin_contract_path("readmission-risk"))
    raw = generate_readmission(args.train_rows, seed=21).astype(object)
    table = validate(raw.where(raw.notna(), None), contract, as_of=date(2025, 7, 1), key=b"k").table
    assert table is not None
    splits = split_step.split(table, contract, TrainingSettings())
    model = train_step.train(splits.train, splits.calibration, contract, TrainingSettings()).candidate
    explainer = explainer_for(model, contract.feature_columns)
    trees = len(explainer.shap.trees)
    leaves = sum(sum(t.is_leaf) for t in explainer.shap.trees)
    frame = train_step.features(splits.calibration, contract).iloc[: max(args.rows, 100)].reset_index(drop=True)
    reference = EstimatorScorer(model, contract)
    scorer, _ = compile_scorer(model, contract, reference)
    # the container's contract-space matrix for the same rows: categories as codes, as validation builds them
    matrix = np.column_stack(
        [
            frame[name].map({c: float(i) for i, c in enumerate(contract.columns[name].categories or [])}).astype(float)
            if contract.columns[name].dtype == "category"
            else frame[name].astype(float)
            for name in contract.feature_columns
        ]
    )
    served, note = build_explainer(model, contract, reference, scorer)
    assert served is not None, note
    with threadpool_limits(limits=1):
        explainer.explain(frame.iloc[:1])  # warm-up
        rows = args.rows
        explain_ms = _per_call_ms(lambda i: explainer.explain(frame.iloc[i : i + 1]), rows)
        inputs = explainer.tree_inputs(frame)
        leaves_ms = _per_call_ms(lambda i: explainer.shap.contributions(inputs[i : i + 1]), rows)
        recursion_ms = _per_call_ms(lambda i: explainer.shap.reference_contributions(inputs[i : i + 1]), min(rows, 20))
        served_ms = _per_call_ms(lambda i: served.top(matrix[i : i + 1], 3), rows)
        sklearn_ms = _per_call_ms(lambda i: model.predict_proba(frame.iloc[i : i + 1]), rows)
        compiled_ms = _per_call_ms(lambda i: scorer.probabilities(matrix[i : i + 1]), rows)
        started = time.perf_counter()
        explainer.explain(frame.iloc[:100])
        batch_explain = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        model.predict_proba(frame.iloc[:100])
        batch_predict = (time.perf_counter() - started) * 1000
    print(f"model: {trees} trees, {leaves} leaves, {len(contract.feature_columns)} features; one thread")
    print(f"{'one row (median / max ms)':44s}")
    print(f"  {'container explain=3 (compiled inputs)':40s} {served_ms[0]:8.2f} / {served_ms[1]:.2f}")
    print(f"  {'explain via the transformers (pandas)':40s} {explain_ms[0]:8.2f} / {explain_ms[1]:.2f}")
    print(f"  {'  TreeSHAP, all leaves at once (served)':40s} {leaves_ms[0]:8.2f} / {leaves_ms[1]:.2f}")
    print(f"  {'  TreeSHAP, Algorithm 2 recursion':40s} {recursion_ms[0]:8.2f} / {recursion_ms[1]:.2f}")
    print(f"  {'predict_proba (scikit-learn)':40s} {sklearn_ms[0]:8.2f} / {sklearn_ms[1]:.2f}")
    label = f"{scorer.path} scorer (/invocations without explain)"
    print(f"  {label:40s} {compiled_ms[0]:8.2f} / {compiled_ms[1]:.2f}")
    print("100 rows (ms)")
    print(f"  {'explain':40s} {batch_explain:8.1f}")
    print(f"  {'predict_proba':40s} {batch_predict:8.1f}")


if __name__ == "__main__":
    main()
