"""/ping is 200 only for a bundle that loaded and scored its self-check; otherwise 503 with the reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin

from tests.serving.container.client import READMISSION_ROW
from tests.serving.container.conftest import start_server


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(bundle_dir, target)
    return target


def _remove_model(d: Path) -> None:
    (d / "model.joblib").unlink()


def _corrupt_model(d: Path) -> None:
    (d / "model.joblib").write_bytes(b"\x80\x04not a pickle at all")


def _edit_contract(d: Path) -> None:
    contract = yaml.safe_load((d / "contract.yaml").read_text())
    contract["columns"]["age"]["range"] = [18, 99]  # still a valid contract, but not the one trained under
    (d / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))


def _break_contract(d: Path) -> None:
    (d / "contract.yaml").write_text("name: [unclosed")


def _unknown_format(d: Path) -> None:
    metadata = json.loads((d / "metadata.json").read_text())
    (d / "metadata.json").write_text(json.dumps({**metadata, "format_version": 99}))


def _bad_threshold(d: Path) -> None:
    metadata = json.loads((d / "metadata.json").read_text())
    (d / "metadata.json").write_text(json.dumps({**metadata, "operating_threshold": 1.5}))


def _wrong_estimator(d: Path) -> None:
    joblib.dump({"not": "a model"}, d / "model.joblib")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_remove_model, "lacks model.joblib"),
        (_corrupt_model, "model.joblib cannot be loaded: "),
        (_wrong_estimator, "not a fitted classifier"),
        (_edit_contract, "contract.yaml was changed after training"),
        (_break_contract, "contract.yaml is not a valid contract"),
        (_unknown_format, "not a bundle format this server knows"),
        (_bad_threshold, "operating_threshold is not a probability"),
    ],
)
def test_a_damaged_bundle_starts_the_server_but_ping_is_503(
    bundle_dir: Path, tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    model_dir = _copy(bundle_dir, tmp_path)
    damage(model_dir)
    server = start_server(model_dir)
    try:
        ping = server.client.ping()
        invocation = server.client.post_json(READMISSION_ROW)
        logged = server.invocations_after(0, 1)
    finally:
        server.stop()
    assert ping.status == 503
    assert ping.json["status"] == "unhealthy"
    assert reason in ping.json["reason"]
    assert invocation.status == 503
    assert json.loads(server.log.lines()[0])["event"] == "model_unavailable"
    last = logged[-1]
    assert last == {
        "event": "invocation",
        "endpoint": "test-endpoint",
        "model": None,
        "model_version": None,
        "status": 503,
        "rows": 0,
        "invalid_scores": 0,
        "latency_ms": last["latency_ms"],
        "synthetic": False,
    }


def test_a_missing_model_directory_is_503(tmp_path: Path) -> None:
    server = start_server(tmp_path / "nothing-here")
    try:
        ping = server.client.ping()
    finally:
        server.stop()
    assert ping.status == 503
    assert "lacks model.joblib, contract.yaml, metadata.json" in ping.json["reason"]


class ScoresBadlyAtExtremes(ClassifierMixin, BaseEstimator):
    """A 'model' whose probabilities break at the edges of the age range: NaN at 90, 1.5 at 18."""

    def fit(self, x: object, y: object) -> ScoresBadlyAtExtremes:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, frame: object) -> np.ndarray:
        age = frame["age"].to_numpy()  # type: ignore[index]
        positive = np.where(age >= 90, np.nan, np.where(age <= 18, 1.5, 0.3))
        return np.column_stack([1 - positive, positive])


class ScoresNothing(ScoresBadlyAtExtremes):
    def predict_proba(self, frame: object) -> np.ndarray:
        return np.full((len(frame), 2), np.nan)  # type: ignore[arg-type]


def test_invalid_scores_are_null_flagged_null_and_counted(bundle_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(bundle_dir, tmp_path)
    joblib.dump(ScoresBadlyAtExtremes().fit(None, None), model_dir / "model.joblib")
    server = start_server(model_dir)
    try:
        assert server.client.ping().json["scoring"] == "scikit-learn"
        reply = server.client.post_json(
            [{**READMISSION_ROW, "age": 90}, {**READMISSION_ROW, "age": 18}, READMISSION_ROW]
        )
        logged = server.invocations_after(0, 1)
    finally:
        server.stop()
    assert reply.status == 200
    assert reply.json["scores"] == [None, None, 0.3]
    assert reply.json["flags"] == [None, None, reply.json["threshold"] <= 0.3]
    assert (logged[0]["rows"], logged[0]["invalid_scores"]) == (3, 2)


def test_a_model_that_cannot_score_its_self_check_is_503(bundle_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(bundle_dir, tmp_path)
    joblib.dump(ScoresNothing().fit(None, None), model_dir / "model.joblib")
    server = start_server(model_dir)
    try:
        ping = server.client.ping()
    finally:
        server.stop()
    assert ping.status == 503
    assert "self-check scoring returned a value that is not a probability" in ping.json["reason"]
