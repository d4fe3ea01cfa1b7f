"""SageMaker data capture parsing: CSV, JSON and BASE64 encodings, multi-record requests, malformed lines."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.monitoring.drift.capture import parse_lines
from pipelines.monitoring.drift.simulate import capture_line, write_capture
from pipelines.monitoring.drift.sources import read_current
from tests.pipelines.monitoring.helpers import baseline, window

COLUMNS = baseline().columns
AT = datetime(2025, 7, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize("encoding", ["CSV", "JSON", "BASE64"])
def test_capture_round_trip(tmp_path: Path, encoding: str) -> None:
    frame = window(60, seed=1)
    write_capture(
        frame[COLUMNS],
        frame["score"].to_numpy(),
        tmp_path,
        COLUMNS,
        encoding=encoding,  # type: ignore[arg-type]
        endpoint="readmission-prod",
        variant="blue",
    )
    batch = read_current(str(tmp_path), COLUMNS)
    got = batch.frame.sort_values("inference_id", key=lambda s: s.str.split("-").str[-1].astype(int))
    assert not batch.malformed and batch.events == 60 and len(got) == 60
    assert set(got["variant"]) == {"blue"} and set(got["endpoint"]) == {"readmission-prod"}
    assert got["inference_id"].tolist() == [f"inf-{i}" for i in range(60)]
    np.testing.assert_allclose(got["score"].astype(float), frame["score"].round(6), atol=1e-6)
    for column in ("age", "creatinine", "hba1c"):
        np.testing.assert_allclose(pd.to_numeric(got[column]), frame[column].astype(float), equal_nan=True)
    assert (got["payer"].to_numpy() == frame["payer"].to_numpy()).all()


def _event(data: object, encoding: str, content_type: str, output: object = "0.25") -> str:
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": content_type,
                    "mode": "INPUT",
                    "data": data,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": content_type,
                    "mode": "OUTPUT",
                    "data": output,
                    "encoding": encoding,
                },
            },
            "eventMetadata": {"eventId": "e-1", "inferenceTime": "2025-07-01T08:00:00Z"},
            "eventVersion": "0",
        }
    )


def test_multi_record_requests_get_one_row_each_with_indexed_ids() -> None:
    record = window(3, seed=2)[COLUMNS].to_dict(orient="records")
    clean = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in record]
    json_line = _event(
        json.dumps({"instances": clean}), "JSON", "application/json", json.dumps({"predictions": [0.1, 0.2, 0.3]})
    )
    header = ",".join(COLUMNS)
    rows = "\n".join(",".join("" if v is None else str(v) for v in r.values()) for r in clean)
    csv_line = _event(f"{header}\n{rows}", "CSV", "text/csv", "0.1,0.9\n0.2,0.8\n0.3,0.7")
    batch = parse_lines([json_line, csv_line], COLUMNS)
    assert batch.frame["inference_id"].tolist() == ["e-1/0", "e-1/1", "e-1/2"] * 2
    assert batch.frame["score"].tolist() == [0.1, 0.2, 0.3, 0.9, 0.8, 0.7]  # CSV: last column is P(positive)
    assert not batch.malformed


def test_malformed_lines_are_counted_by_reason_and_never_stop_the_job() -> None:
    good = capture_line(
        window(1, seed=3)[COLUMNS].iloc[0].to_dict(), COLUMNS, 0.3, event_id="e", inference_id="i", at=AT
    )
    lines = [
        good,
        "{not json",
        json.dumps({"eventMetadata": {}}),
        _event("1,2,3", "CSV", "text/csv"),  # wrong number of columns
        _event("###", "BASE64", "text/csv"),
        _event(base64.b64encode(",".join(["1"] * len(COLUMNS)).encode()).decode(), "BASE64", "text/csv", "???"),
        "",
        good,
    ]
    batch = parse_lines(lines, COLUMNS)
    assert batch.events == 7 and len(batch.frame) == 3  # two good lines + one with an unreadable output
    assert dict(batch.malformed) == {
        "not_json": 1,
        "no_capture_data": 1,
        "input_column_count": 1,
        "input_base64": 1,
        "output_unreadable": 1,
    }
    assert batch.frame["score"].isna().sum() == 1
    assert batch.frame["inference_id"].iloc[0] == "i"


def test_variant_comes_from_the_sagemaker_key_layout() -> None:
    line = _event(",".join(["1"] * len(COLUMNS)), "CSV", "text/csv")
    batch = parse_lines([line], COLUMNS, source="capture/my-endpoint/shadow/2025/07/01/08/abc.jsonl")
    assert batch.frame["variant"].tolist() == ["shadow"] and batch.frame["endpoint"].tolist() == ["my-endpoint"]
    assert parse_lines([line], COLUMNS, source="elsewhere/file.jsonl").frame["variant"].isna().all()


def test_synthetic_traffic_is_left_out_and_counted_apart(tmp_path: Path) -> None:
    """The canary's requests: by its InferenceId prefix (what data capture records) or by Custom-Attributes."""
    from clinops.traffic import SYNTHETIC_ATTRIBUTE, synthetic_inference_id

    frame = window(40, seed=5)
    write_capture(frame[COLUMNS], frame["score"].to_numpy(), tmp_path / "real", COLUMNS)
    synthetic = window(25, seed=6)
    write_capture(
        synthetic[COLUMNS], np.full(25, 0.99), tmp_path / "canary", COLUMNS, id_prefix=synthetic_inference_id()
    )
    for file in (tmp_path / "canary").rglob("*.jsonl"):  # the canary's lines land in the same hourly files
        target = tmp_path / "real" / file.relative_to(tmp_path / "canary")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as out:
            out.write(file.read_text())
    marked = json.loads(_event("1,2", "CSV", "text/csv"))
    marked["eventMetadata"]["customAttributes"] = f"trace=1;{SYNTHETIC_ATTRIBUTE}"
    with next((tmp_path / "real").rglob("*.jsonl")).open("a") as out:
        out.write(json.dumps(marked) + "\n")
    batch = read_current(str(tmp_path / "real"), COLUMNS)
    assert (batch.events, batch.synthetic, len(batch.frame)) == (66, 26, 40)
    assert not batch.malformed
    assert not batch.frame["inference_id"].str.startswith("clinops-synthetic-").any()
    assert (batch.frame["score"] < 0.99).all()
