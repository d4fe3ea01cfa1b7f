"""Valid requests over HTTP: JSON record, list and instances; CSV; the scores are the model's own."""

from __future__ import annotations

import csv
import http.client
import io
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from pipelines.contracts import load_contract
from pipelines.steps.train import features
from tests.serving.container.client import READMISSION_ROW, Client
from tests.serving.container.conftest import Running


def rows(count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        row = dict(READMISSION_ROW)
        row.update(
            age=int(rng.integers(18, 91)),
            sex=["F", "M"][i % 2],
            length_of_stay_days=int(rng.integers(1, 30)),
            creatinine=round(float(rng.uniform(0.4, 4.0)), 2),
            payer=["Medicare", "Medicaid", "Commercial", "Self-pay"][i % 4],
            hba1c=None if i % 3 else round(float(rng.uniform(4, 12)), 1),
        )
        out.append(row)
    return out


def model_scores(bundle_dir: Path, records: list[dict[str, Any]]) -> np.ndarray:
    """What the pipeline's estimator says, through the pipeline's own feature builder."""
    contract = load_contract(bundle_dir / "contract.yaml")
    model = joblib.load(bundle_dir / "model.joblib")
    return model.predict_proba(features(pd.DataFrame(records), contract))[:, 1]


def as_csv(records: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record[c] is None else record[c] for c in columns])
    return buffer.getvalue()


def test_ping_is_healthy_with_the_bundle_identity(client: Client, bundle_dir: Path) -> None:
    reply = client.ping()
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    assert reply.status == 200
    assert reply.json == {
        "status": "healthy",
        "model": "readmission-risk",
        "model_version": metadata["model_version"],
        "scoring": "compiled",
    }


def test_single_record_scores_as_the_model_does(client: Client, bundle_dir: Path) -> None:
    reply = client.post_json(READMISSION_ROW)
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    assert reply.status == 200, reply.raw
    body = reply.json
    assert set(body) == {"model", "model_version", "scores", "threshold", "flags"}
    assert body["model_version"] == metadata["model_version"]
    assert body["threshold"] == metadata["operating_threshold"]
    assert body["scores"][0] == pytest.approx(model_scores(bundle_dir, [READMISSION_ROW])[0], abs=1e-12)
    assert body["flags"] == [body["scores"][0] >= body["threshold"]]


@pytest.mark.parametrize("wrap", ["list", "instances"])
def test_batch_of_records_scores_every_row_in_order(client: Client, bundle_dir: Path, wrap: str) -> None:
    records = rows(100)
    reply = client.post_json(records if wrap == "list" else {"instances": records})
    assert reply.status == 200, reply.raw
    scores = np.array(reply.json["scores"])
    np.testing.assert_allclose(scores, model_scores(bundle_dir, records), rtol=0, atol=1e-12)
    assert reply.json["flags"] == [bool(s >= reply.json["threshold"]) for s in scores]
    assert len(set(scores.round(6))) > 10  # the rows differ, so must their scores


def test_csv_with_header_in_any_column_order_scores_like_json(client: Client) -> None:
    records = rows(20, seed=5)
    columns = list(READMISSION_ROW)
    expected = client.post_json(records).json["scores"]
    in_order = client.post(as_csv(records, columns), "text/csv")
    shuffled = client.post(as_csv(records, list(reversed(columns))), "text/csv; charset=utf-8")
    assert in_order.status == shuffled.status == 200
    assert in_order.json["scores"] == expected
    assert shuffled.json["scores"] == expected


def test_csv_single_row_with_crlf_and_bom(client: Client) -> None:
    body = "\ufeff" + as_csv([READMISSION_ROW], list(READMISSION_ROW)).replace("\n", "\r\n")
    reply = client.post(body.encode("utf-8"), "text/csv")
    assert reply.status == 200, reply.raw
    assert reply.json["scores"] == client.post_json(READMISSION_ROW).json["scores"]


def test_the_canary_payload_scores(client: Client) -> None:
    """The synthetic-traffic canary (serving/guardrails/canary.py) sends this CSV during deployments; it must score."""
    from pipelines.contracts.synthetic import canary_payload_csv

    reply = client.post(canary_payload_csv("readmission-risk"), "text/csv", Accept="application/json")
    assert reply.status == 200, reply.raw
    assert len(reply.json["scores"]) == 5
    assert all(0.0 <= s <= 1.0 for s in reply.json["scores"])


def test_missing_values_only_where_the_contract_allows_them(client: Client) -> None:
    allowed = client.post_json({**READMISSION_ROW, "hba1c": None, "albumin": None})
    refused = client.post_json({**READMISSION_ROW, "age": None})
    assert allowed.status == 200
    assert refused.status == 400
    assert refused.json["problems"] == [{"row": 0, "field": "age", "problem": "missing: a value is required"}]


def test_integers_written_as_whole_floats_and_padded_categories_are_accepted(client: Client) -> None:
    reply = client.post_json({**READMISSION_ROW, "age": 71.0, "sex": " F "})
    assert reply.status == 200
    assert reply.json["scores"] == client.post_json(READMISSION_ROW).json["scores"]


def test_keep_alive_connection_serves_several_requests(running: Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    try:
        statuses = []
        for body in (READMISSION_ROW, {"age": "x"}, READMISSION_ROW):
            connection.request("POST", "/invocations", json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.request("GET", "/ping")
        statuses.append(connection.getresponse().status)
    finally:
        connection.close()
    assert statuses == [200, 400, 200, 200]


def test_each_invocation_logs_one_line_with_the_metric_fields(running: Running) -> None:
    before = len(running.log.lines())
    running.client.post_json(rows(37))
    running.client.post_json({"age": "x"})
    # a line from an earlier test's last request may still land after `before`: pick ours by their counts
    logged = running.invocations_after(before, 2, where=lambda e: e["rows"] == 37 or e.get("problems") == 15)
    assert len(logged) == 2
    ok, bad = sorted(logged, key=lambda e: e["status"])  # each line is written after its reply: any order
    assert set(ok) == {
        "event",
        "endpoint",
        "model",
        "model_version",
        "status",
        "rows",
        "invalid_scores",
        "latency_ms",
        "synthetic",
    }
    assert (ok["endpoint"], ok["status"], ok["rows"], ok["invalid_scores"]) == ("test-endpoint", 200, 37, 0)
    assert ok["latency_ms"] > 0
    assert (bad["status"], bad["rows"], bad["problems"]) == (400, 0, 15)
