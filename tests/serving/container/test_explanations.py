"""Optional explanations over HTTP: asked for with `explain=N` in the Custom-Attributes header, exact (they add
up to the served score), by feature name only, off by default, and a bad request is a 400 naming the field."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinops.traffic import CUSTOM_ATTRIBUTES_HEADER, explain_attribute
from pipelines.contracts import load_contract
from pipelines.explain import explainer_for
from tests.serving.container.client import READMISSION_ROW, Client, problems_of
from tests.serving.container.conftest import Running, start_server
from tests.serving.container.test_invocations import rows

FIELD = f"{CUSTOM_ATTRIBUTES_HEADER}: explain"


def _post(client: Client, document: object, attributes: str, **headers: str) -> object:
    return client.post(json.dumps(document), **{CUSTOM_ATTRIBUTES_HEADER: attributes}, **headers)


def test_off_by_default_the_answer_is_unchanged(client: Client) -> None:
    reply = client.post_json(READMISSION_ROW)
    assert reply.status == 200
    assert set(reply.json) == {"model", "model_version", "scores", "threshold", "flags"}


def test_each_row_gets_its_top_n_features_in_calibrated_log_odds(client: Client, bundle_dir: Path) -> None:
    records = rows(12, seed=4)
    reply = _post(client, records, f"clinops-traffic=synthetic; {explain_attribute(4)}")
    assert reply.status == 200, reply.raw
    body = reply.json
    assert body["explanation_units"] == "calibrated log-odds"
    assert len(body["explanations"]) == len(records)
    contract = load_contract(bundle_dir / "contract.yaml")
    for row in body["explanations"]:
        assert len(row) == 4
        assert all(set(item) == {"feature", "contribution"} for item in row)  # names only, never values
        assert all(item["feature"] in contract.feature_columns for item in row)
        magnitudes = [abs(item["contribution"]) for item in row]
        assert magnitudes == sorted(magnitudes, reverse=True)
    # the full set (N = every feature) adds up, with the expected value, to the served score's log-odds
    width = len(contract.feature_columns)
    full = _post(client, records, explain_attribute(width)).json
    import joblib

    base = explainer_for(joblib.load(bundle_dir / "model.joblib"), contract.feature_columns).expected_value
    for score, row in zip(full["scores"], full["explanations"], strict=True):
        assert {item["feature"] for item in row} == set(contract.feature_columns)
        total = base + sum(item["contribution"] for item in row)
        assert total == pytest.approx(math.log(score / (1 - score)), abs=1e-9)
    assert full["scores"] == body["scores"]  # asking for reasons never changes the score


@pytest.mark.parametrize("value", ["0", "16", "-1", "three", "2.5", "", "+3", " 3 x", "1000"])
def test_a_bad_count_is_a_400_naming_the_field(client: Client, value: str) -> None:
    reply = _post(client, READMISSION_ROW, f"explain={value}")
    assert reply.status == 400, reply.raw
    ((_, field, problem),) = problems_of(reply)
    assert field == FIELD and "from 1 to 15" in problem
    assert value not in problem or value in ("", "1")  # the header's value is not echoed


def test_asked_twice_or_with_a_csv_reply_is_a_400_naming_the_field(client: Client) -> None:
    twice = _post(client, READMISSION_ROW, "explain=2,explain=3")
    assert twice.status == 400 and problems_of(twice)[0][1] == FIELD and "once" in problems_of(twice)[0][2]
    csv = _post(client, READMISSION_ROW, "explain=2", Accept="text/csv")
    assert csv.status == 400 and problems_of(csv)[0][1] == FIELD and "JSON reply" in problems_of(csv)[0][2]


def test_the_invocation_log_counts_explanations_and_holds_no_names_or_values(running: Running) -> None:
    start = len(running.log.lines())
    reply = _post(running.client, READMISSION_ROW, "explain=3")
    assert reply.status == 200
    (line,) = running.invocations_after(start, 1, lambda e: e.get("explained") == 3)
    text = json.dumps(line)
    assert not any(name in text for name in READMISSION_ROW)  # no feature names, so no "why" per patient


@pytest.fixture(scope="module")
def capped(bundle_dir: Path) -> Iterator[Running]:
    server = start_server(bundle_dir, max_explained_rows=5)
    yield server
    server.stop()


def test_too_many_rows_to_explain_is_a_413_and_scores_alone_still_pass(capped: Running) -> None:
    records = rows(6)
    reply = _post(capped.client, records, "explain=2")
    assert reply.status == 413
    ((_, field, problem),) = problems_of(reply)
    assert field == FIELD and "at most 5" in problem
    assert capped.client.post_json(records).status == 200
    assert _post(capped.client, records[:5], "explain=2").status == 200


def test_a_model_it_cannot_explain_still_scores_and_says_why(tmp_path: Path, bundle_dir: Path) -> None:
    """A bundle whose calibration is isotonic (not affine in the raw score): scores, and no made-up reasons."""
    import shutil

    import joblib
    from sklearn.calibration import CalibratedClassifierCV

    model = joblib.load(bundle_dir / "model.joblib")
    assert isinstance(model, CalibratedClassifierCV)
    for name in ("contract.yaml", "metadata.json"):
        shutil.copy(bundle_dir / name, tmp_path / name)
    model.method = "isotonic"  # the exact mapping to calibrated log-odds no longer holds: refused, not guessed
    joblib.dump(model, tmp_path / "model.joblib")
    server = start_server(tmp_path)
    try:
        reply = _post(server.client, READMISSION_ROW, "explain=3")
        assert reply.status == 200, reply.raw
        assert "explanations" not in reply.json
        assert "isotonic" in reply.json["explanations_unavailable"]
        assert 0.0 <= reply.json["scores"][0] <= 1.0
    finally:
        server.stop()


def test_the_compiled_path_explains_as_the_transformers_do_and_a_column_mix_up_is_refused(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import joblib
    import numpy as np

    from serving.container.artifact import load_served_model
    from serving.container.scoring import EstimatorScorer, build_explainer, synthetic_features

    served = load_served_model(bundle_dir)
    assert served.explainer is not None and served.explainer.inputs is not None, served.explain_note
    assert "exact TreeSHAP" in served.explain_note
    contract = load_contract(bundle_dir / "contract.yaml")
    features = synthetic_features(contract, 40, seed=8)
    compiled = served.explainer.explain(features)
    through_pandas = served.explainer.model.explain(served.explainer.frame(features))
    np.testing.assert_allclose(compiled.contributions, through_pandas.contributions, rtol=0, atol=1e-12)
    # an explainer whose columns are swapped still adds up (sums ignore names), so the mapping is checked itself
    model = joblib.load(bundle_dir / "model.joblib")
    swapped = served.explainer.model.to_contract.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    broken = dataclasses.replace(served.explainer.model, to_contract=swapped)
    monkeypatch.setattr("serving.container.scoring.explainer_for", lambda *_: broken)
    explainer, note = build_explainer(model, contract, EstimatorScorer(model, contract), served.scorer)
    assert explainer is None and "disagree" in note
