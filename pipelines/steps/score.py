"""Step 4a - score the held-out test split with the candidate and the comparator.

Writes `predictions.parquet`: the label, both scores and the sensitive attributes, one row per test admission.
That is patient-level data (de-identified, but still about patients), so in the cloud it stays in the data
bucket under the data key; evaluation and fairness turn it into aggregates that may travel further.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from pipelines.bundle import Bundle, read_bundle
from pipelines.jobio import PROCESSING, model_dir, read_table, write_table
from pipelines.steps.train import features


def score(bundle: Bundle, test: pd.DataFrame) -> pd.DataFrame:
    contract = bundle.contract
    x = features(test, contract)
    predictions = pd.DataFrame(
        {
            "label": test[contract.label.column].to_numpy(),
            "score": bundle.model.predict_proba(x)[:, 1],
            "comparator_score": bundle.comparator.predict_proba(x)[:, 1],
        }
    )
    for name in contract.sensitive_columns:
        predictions[name] = test[name].to_numpy()
    return predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=PROCESSING / "input/model")
    parser.add_argument("--test", default=PROCESSING / "input/test")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/predictions")
    args = parser.parse_args(argv)
    bundle = read_bundle(model_dir(args.model, scratch=tempfile.mkdtemp(prefix="model-")))
    write_table(score(bundle, read_table(args.test)), args.output / "predictions.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
