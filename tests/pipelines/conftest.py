"""Fixtures for the training-pipeline tests: a fixed clock, small data, and an MLflow store per test that is
copied from one template (creating MLflow's sqlite schema costs seconds; copying a file costs nothing)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines import tracking
from pipelines.settings import GateSettings, PipelineSettings

FIXED_CLOCK = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_CLOCK


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One template store for the whole session, shared by pytest-xdist workers under a file lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory all workers' base temps live in
    database = root / "mlflow-template" / "mlflow" / "mlflow.db"
    with (root / "mlflow-template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            tracking.ready(tracking.default_tracking_uri(root / "mlflow-template"))  # creates the schema
    return database


@pytest.fixture
def out_dir(tmp_path: Path, mlflow_template: Path) -> Path:
    """A run directory whose `mlflow/mlflow.db` is a fresh copy of the template store."""
    (tmp_path / "mlflow").mkdir()
    shutil.copy(mlflow_template, tmp_path / "mlflow" / "mlflow.db")
    return tmp_path


def small_data_settings(**gate: float | int) -> PipelineSettings:
    """Gates widened for test-sized data: with a few hundred test rows per subgroup, AUC gaps of 0.1 arise by
    chance; and the synthetic readmission model's sensitivity differs by age band far beyond 0.10 (risk rises
    with age, one threshold serves all), which the default error-rate limits rightly reject. Tests of a gate
    pass that gate's threshold explicitly."""
    base = {
        "max_subgroup_auc_gap": 0.2,
        "max_subgroup_tpr_gap": 0.9,
        "max_subgroup_fpr_gap": 0.9,
        "max_comparator_shortfall": 0.1,  # on a few thousand rows the booster may trail the logistic by chance
        "min_subgroup_size": 50,
    } | gate
    return PipelineSettings(gate=GateSettings(**base))


@pytest.fixture
def clock() -> Callable[[], datetime]:
    return fixed_clock
