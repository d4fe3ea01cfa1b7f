"""Write a scored table as SageMaker data capture files, exactly as an endpoint with capture on would.

For the demo and the tests: the drift job then reads the same JSONL, in the same S3 key layout
(`<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`), that SageMaker writes. One request per row.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

Encoding = Literal["CSV", "JSON", "BASE64"]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def capture_line(
    record: dict[str, Any],
    columns: list[str],
    score: float,
    *,
    event_id: str,
    inference_id: str | None,
    at: datetime,
    encoding: Encoding = "CSV",
) -> str:
    if encoding == "JSON":
        body = json.dumps({c: _plain(record.get(c)) for c in columns})
        endpoint_input = {"observedContentType": "application/json", "mode": "INPUT", "data": body, "encoding": "JSON"}
        endpoint_output = {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": json.dumps({"predictions": [score]}),
            "encoding": "JSON",
        }
    else:
        body = ",".join(_cell(record.get(c)) for c in columns)
        data, out = body, f"{score:.6f}"
        if encoding == "BASE64":  # content type not listed in CaptureContentTypeHeader: SageMaker base64s it
            data, out = base64.b64encode(body.encode()).decode(), base64.b64encode(out.encode()).decode()
        endpoint_input = {"observedContentType": "text/csv", "mode": "INPUT", "data": data, "encoding": encoding}
        endpoint_output = {
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "OUTPUT",
            "data": out,
            "encoding": encoding,
        }
    metadata = {"eventId": event_id, "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps(
        {
            "captureData": {"endpointInput": endpoint_input, "endpointOutput": endpoint_output},
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
    )


def write_capture(
    frame: pd.DataFrame,
    scores: np.ndarray,
    folder: Path,
    columns: list[str],
    *,
    endpoint: str = "readmission-risk-prod",
    variant: str = "AllTraffic",
    encoding: Encoding = "CSV",
    start: datetime | None = None,
    every: timedelta = timedelta(minutes=7),
    id_prefix: str = "inf",
) -> list[Path]:
    """One request per row, `every` apart from `start`; one file per hour as SageMaker rolls them. The inference
    id of row i is f"{id_prefix}-{i}" (what the hospital system would pass as InferenceId)."""
    start = start or datetime(2025, 7, 1, tzinfo=UTC)
    files: dict[Path, list[str]] = {}
    for i, record in enumerate(frame.to_dict(orient="records")):
        at = start + i * every
        hour = folder / endpoint / variant / at.strftime("%Y/%m/%d/%H")
        line = capture_line(
            record,
            columns,
            float(scores[i]),
            event_id=f"evt-{id_prefix}-{i}",
            inference_id=f"{id_prefix}-{i}",
            at=at,
            encoding=encoding,
        )
        files.setdefault(hour / f"capture-{at:%Y%m%d%H}.jsonl", []).append(line)
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return sorted(files)
