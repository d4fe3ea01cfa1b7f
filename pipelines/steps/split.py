"""Step 2 - split into train / calibration / test: stratified by outcome, reproducible by seed, and grouped by
patient when the contract names a grouping column, so the test set measures performance on unseen patients.

The calibration split fits the probability calibration and sets the operating threshold; the test split is
touched only by evaluation. The grouping column (a token) is dropped here: nothing downstream needs it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from clinops.exitcodes import ExitCode
from pipelines.contracts import Contract, load_contract
from pipelines.errors import InputError
from pipelines.jobio import PROCESSING, read_json, read_table, report_failure, write_json, write_table
from pipelines.settings import TrainingSettings

SPLITS = ("train", "calibration", "test")


@dataclass
class Splits:
    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    summary: dict[str, Any]


def _groups(table: pd.DataFrame, contract: Contract) -> np.ndarray:
    column = contract.split.group_by
    if column is None or column not in table:
        return np.arange(len(table))
    # Codes by first appearance: independent of the token values (and so of the tokenization key).
    codes, _ = pd.factorize(table[column])
    missing = codes < 0
    codes[missing] = codes.max() + 1 + np.arange(missing.sum())  # a row without a key is its own group
    return codes


def _split_groups(groups: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    group_ids = np.unique(groups)
    group_label = pd.Series(labels).groupby(groups).max().reindex(group_ids).to_numpy()
    try:
        first, second = train_test_split(group_ids, test_size=fraction, random_state=seed, stratify=group_label)
    except ValueError as exc:
        raise InputError(f"too few rows of each outcome to split ({exc}); provide more data") from None
    return np.isin(groups, first), np.isin(groups, second)


def split(table: pd.DataFrame, contract: Contract, settings: TrainingSettings) -> Splits:
    labels = table[contract.label.column].to_numpy()
    groups = _groups(table, contract)
    rest, test = _split_groups(groups, labels, settings.test_fraction, settings.seed)
    share = settings.calibration_fraction / (1 - settings.test_fraction)
    train_in_rest, calibration_in_rest = _split_groups(groups[rest], labels[rest], share, settings.seed + 1)
    rest_index = np.flatnonzero(rest)
    parts = {
        "train": rest_index[train_in_rest],
        "calibration": rest_index[calibration_in_rest],
        "test": np.flatnonzero(test),
    }
    keep = [c for c in table.columns if c != contract.split.group_by]
    frames = {name: table.iloc[index][keep].reset_index(drop=True) for name, index in parts.items()}
    for name, frame in frames.items():
        if frame[contract.label.column].nunique() < 2:
            raise InputError(f"the {name} split has one outcome class only; provide more data")
    summary: dict[str, Any] = {
        name: {
            "rows": len(frame),
            "positives": int(frame[contract.label.column].sum()),
            "prevalence": float(frame[contract.label.column].mean()),
            "groups": len(np.unique(groups[parts[name]])),
        }
        for name, frame in frames.items()
    }
    summary["grouped_by"] = contract.split.group_by
    summary["seed"] = settings.seed
    return Splits(frames["train"], frames["calibration"], frames["test"], summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validated", default=PROCESSING / "input/validated")
    parser.add_argument("--contract", default=PROCESSING / "input/contract")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/splits")
    parser.add_argument("--seed", type=int, default=TrainingSettings().seed)
    parser.add_argument("--test-fraction", type=float, default=TrainingSettings().test_fraction)
    parser.add_argument("--calibration-fraction", type=float, default=TrainingSettings().calibration_fraction)
    args = parser.parse_args(argv)
    settings = TrainingSettings(
        seed=args.seed, test_fraction=args.test_fraction, calibration_fraction=args.calibration_fraction
    )
    try:
        splits = split(read_table(args.validated), load_contract(args.contract), settings)
    except InputError as exc:
        report_failure(str(exc))
        print(exc, file=sys.stderr)
        return ExitCode.UNUSABLE_INPUT
    lineage_file = Path(args.validated) / "lineage.json"
    lineage = read_json(lineage_file) if lineage_file.is_file() else {}
    for name in SPLITS:
        write_table(getattr(splits, name), args.output / name / f"{name}.parquet")
    write_json(splits.summary | lineage, args.output / "summary" / "split-summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
