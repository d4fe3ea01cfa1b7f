"""The shadow report ranks what champion and shadow lean on (mean |exact contribution| over the same production
requests), side by side; it is information only - a model that cannot be read changes nothing but the note."""

from __future__ import annotations

import datetime as dt
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from clinops import names
from clinops.config import load_from_stack_file
from clinops.exitcodes import ExitCode
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.data.synthetic import generate_readmission
from pipelines.settings import TrainingSettings
from pipelines.steps import split as split_step
from pipelines.steps import train as train_step
from pipelines.steps.validate import validate
from serving.release.release import find_model
from serving.release.shadow_report import (
    TOP_FEATURES,
    attribution_sides,
    markdown,
    package_model_loader,
    run_report,
    write_report,
)
from tests.serving.release.helpers import MODEL, NOW, Registry, stack_aws, stubbed
from tests.serving.release.test_baseline import BUILD_BUCKET, MODEL_KEY, build_account, with_model_data
from tests.serving.release.test_shadow import CRITERIA, _stubs, scores, write_capture


def _model(blind_to: str | None) -> Any:
    """The pipeline's model; `blind_to`: a feature held constant in training (no split can read it)."""
    contract = load_contract(builtin_contract_path("readmission-risk"))
    raw = generate_readmission(2500, seed=4).astype(object)
    table = validate(raw.where(raw.notna(), None), contract, as_of=date(2025, 7, 1), key=b"k").table
    assert table is not None
    if blind_to is not None:
        table[blind_to] = 1
    settings = TrainingSettings(max_iter=30)
    splits = split_step.split(table, contract, settings)
    return train_step.train(splits.train, splits.calibration, contract, settings).candidate


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    return _model(None), _model("charlson_index")


def test_side_by_side_top_features_of_two_models_on_the_same_requests(models: tuple[Any, Any]) -> None:
    champion, shadow = models
    contract = load_contract(builtin_contract_path("readmission-risk"))
    requests = generate_readmission(300, seed=12)
    sides = attribution_sides(champion, shadow, requests, contract)
    assert sides["rows"] == 300 and sides["units"] == "calibrated log-odds"
    assert [row["rank"] for row in sides["top"]] == list(range(1, TOP_FEATURES + 1))
    production = [row["production"] for row in sides["top"]]
    shadow_top = [row["shadow"] for row in sides["top"]]
    assert "charlson_index" in production and "charlson_index" not in shadow_top  # the blind model cannot use it
    assert sides["mean_abs"]["charlson_index"]["shadow"] == 0.0  # exactly: no split reads it
    means = [sides["mean_abs"][f]["production"] for f in production]
    assert means == sorted(means, reverse=True)


def test_the_report_shows_them_and_a_model_it_cannot_read_only_changes_the_note(
    session, project, registry: Registry, tmp_path: Path, models: tuple[Any, Any]
) -> None:
    _, production, _, candidate = registry.approved(versions=4)
    config = load_from_stack_file("prod", project)
    capture, when = tmp_path / "capture", NOW - dt.timedelta(hours=1)
    p = scores(260)
    write_capture(capture, "prod", names.VARIANT, {f"req-{i}": s for i, s in enumerate(p)}, when)
    write_capture(capture, "prod", names.SHADOW_VARIANT, {f"req-{i}": s + 0.004 for i, s in enumerate(p)}, when)
    by_arn = {production: models[0], candidate: models[1]}

    def report_with(loader: Any) -> Any:
        aws = stack_aws(session, **_stubs(registry, production, candidate))
        return run_report(
            aws, config, find_model(config, MODEL), criteria=CRITERIA, capture=str(capture), shadow_arn=candidate,
            since=NOW - dt.timedelta(hours=3), now=NOW, models=loader,
        )  # fmt: skip

    report = report_with(by_arn.__getitem__)
    assert report.exit_code == ExitCode.OK and report.attribution_note == "exact TreeSHAP"
    assert report.attributions["rows"] == 260
    paths = write_report(report, tmp_path / "report")
    doc = json.loads(paths[0].read_text())
    assert doc["attributions"]["top"][0]["rank"] == 1
    text = paths[1].read_text()
    assert "## Top features" in text and "| rank | production | shadow |" in text

    def unreadable(arn: str) -> Any:
        raise ValueError(f"{arn}: model.tar.gz holds no model.joblib")

    broken = report_with(unreadable)
    assert broken.exit_code == ExitCode.OK and broken.attributions is None
    assert broken.comparison.verdict == report.comparison.verdict
    assert "not computed (ValueError" in broken.attribution_note and "not computed" in markdown(broken)


def test_package_models_load_from_their_model_archive(session, registry: Registry, models: tuple[Any, Any]) -> None:
    buffer = io.BytesIO()
    joblib.dump(models[0], buffer)
    build_account(session, {"model/model.joblib": buffer.getvalue(), "model/metadata.json": b"{}"})
    [arn] = registry.approved()
    sagemaker, stub = stubbed("sagemaker")
    stub.add_response(
        "describe_model_package", with_model_data(registry.describe(arn), f"s3://{BUILD_BUCKET}/{MODEL_KEY}")
    )
    with stub:
        loaded = package_model_loader(stack_aws(session, sagemaker=sagemaker))(arn)
    frame = train_step.features(generate_readmission(20, seed=3), load_contract(builtin_contract_path(MODEL)))
    np.testing.assert_array_equal(loaded.predict_proba(frame), models[0].predict_proba(frame))
