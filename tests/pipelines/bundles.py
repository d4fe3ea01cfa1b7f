"""A real model bundle written by the pipeline's own steps (validate -> split -> train -> save, exactly as
`pipelines.local` runs them) on a small synthetic extract: what the container, CDS, explanation and drift tests
serve or explain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from pipelines.contracts import Contract, builtin_contract_path, load_contract
from pipelines.contracts.validate import validate_frame
from pipelines.data.synthetic import generate_readmission
from pipelines.jobio import read_raw_table
from pipelines.settings import TrainingSettings
from pipelines.steps import split as split_step
from pipelines.steps import train as train_step


@dataclass(frozen=True)
class PipelineBundle:
    directory: Path
    splits: split_step.Splits


def train_pipeline_bundle(
    directory: Path, work: Path, rows: int = 3000, seed: int = 3, max_iter: int = 40
) -> PipelineBundle:
    contract = load_contract(builtin_contract_path("readmission-risk"))
    extract = work / "extract.csv"
    generate_readmission(rows, seed=seed).to_csv(extract, index=False)
    report, table = validate_frame(read_raw_table(extract), contract, as_of=date(2025, 7, 1), token_key=b"test")
    assert table is not None, report.reasons()
    splits = save_trained(table, contract, directory, max_iter=max_iter, dataset_sha256="sha256:" + "ab" * 32)
    return PipelineBundle(directory, splits)


def save_trained(
    table: pd.DataFrame, contract: Contract, directory: Path, max_iter: int, dataset_sha256: str
) -> split_step.Splits:
    """split -> train -> save of a validated table, as `pipelines.local` runs them, into `directory`."""
    settings = TrainingSettings(max_iter=max_iter)
    splits = split_step.split(table, contract, settings)
    trained = train_step.train(splits.train, splits.calibration, contract, settings)
    train_step.save(
        trained,
        splits.train,
        contract,
        settings,
        directory,
        dataset_sha256=dataset_sha256,
        trained_at=datetime(2025, 7, 1, 12, 0, tzinfo=UTC),
    )
    return splits


def write_pipeline_bundle(directory: Path, work: Path) -> Path:
    return train_pipeline_bundle(directory, work).directory
