"""Parse SageMaker data capture into rows: features, score, inference id, time and variant.

SageMaker writes one JSON object per line (JSONL) to
`s3://<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, shaped as (Data capture and
"Capture data from real-time endpoint" in the SageMaker developer guide:
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html,
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html):

    {"captureData": {
        "endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",  "data": "...", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "...", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<caller's id, optional>", "inferenceTime": "<ISO 8601>"},
     "eventVersion": "0"}

`encoding` is CSV or JSON when the content type is listed in the endpoint's CaptureContentTypeHeader, and
BASE64 otherwise (the default), in which case `data` is the base64 of the payload bytes and
`observedContentType` says how to read them.

Payloads understood: CSV without a header in the model's feature order (one record per line; a header line
equal to the feature names is skipped), JSON records (`{"feature": value}`), lists of records, `{"instances":
[...]}` with records or positional lists. Outputs: CSV numbers (one line per record; with several numbers on a
line the last is the positive-class probability, as scikit-learn's predict_proba column 1), JSON numbers or
lists, or objects with `predictions` / `scores` / `probabilities` / `score` / `probability`.

Join key for delayed outcomes: `inference_id` is the caller's InferenceId when given, else SageMaker's eventId;
a request with several records gets `<id>/<index>` per record.

Synthetic traffic (the deployment canary's requests, marked as `clinops.traffic` says) is skipped and counted
in `synthetic`: its random in-range rows are not patients, and would bias drift, quality and shadow windows.

A line that cannot be read is counted under a reason and skipped; a readable input with an unreadable output
keeps its features (drift needs only inputs) and is counted under `output_unreadable`. Reasons and counts are
all that is ever reported: no payload content is logged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from clinops.traffic import is_synthetic_capture

PATH_PATTERN = re.compile(r"(?:^|/)(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")
_SCORE_KEYS = ("predictions", "scores", "probabilities", "score", "probability", "outputs")


class Malformed(ValueError):
    """A capture line that cannot be used; the message is a reason code, never content."""


class Synthetic(Exception):
    """A capture line of synthetic traffic: skipped, and counted apart from malformed lines."""


@dataclass
class CaptureBatch:
    """Parsed records (or a table read as is), with the count of events and of malformed lines by reason.

    Records stay plain dicts until `frame` is first read: capture arrives as thousands of small hourly files,
    and building one DataFrame per file costs far more than parsing them.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    malformed: Counter[str] = field(default_factory=Counter)
    events: int = 0
    table: pd.DataFrame | None = None
    synthetic: int = 0  # events skipped as synthetic traffic

    @cached_property
    def frame(self) -> pd.DataFrame:
        if self.table is not None:
            return self.table
        return pd.DataFrame.from_records(self.records) if self.records else pd.DataFrame(columns=["inference_id"])


def combine(batches: list[CaptureBatch]) -> CaptureBatch:
    records = [r for b in batches for r in b.records]
    return CaptureBatch(
        records,
        sum((b.malformed for b in batches), Counter()),
        sum(b.events for b in batches),
        synthetic=sum(b.synthetic for b in batches),
    )


def _decode(section: Any, what: str) -> tuple[Any, str]:
    """The payload of endpointInput/endpointOutput as text (or an already parsed JSON value) and its kind."""
    if not isinstance(section, dict) or "data" not in section:
        raise Malformed(f"{what}_missing")
    data, encoding = section["data"], str(section.get("encoding", "")).upper()
    content_type = str(section.get("observedContentType", "")).lower()
    if not isinstance(data, str):
        return data, "json"
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Malformed(f"{what}_base64") from None
    if encoding == "JSON" or "json" in content_type:
        return data, "json"
    if encoding == "CSV" or "csv" in content_type:
        return data, "csv"
    return data, "json" if data.lstrip()[:1] in ("{", "[") else "csv"


def _csv_rows(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text.strip())) if row]


def _records(payload: Any, kind: str, columns: list[str]) -> list[dict[str, Any]]:
    if kind == "csv":
        rows = _csv_rows(payload)
        if rows and [c.strip() for c in rows[0]] == columns:
            rows = rows[1:]
        if not rows or any(len(r) != len(columns) for r in rows):
            raise Malformed("input_column_count")
        return [dict(zip(columns, (v.strip() or None for v in r), strict=True)) for r in rows]
    try:
        value = json.loads(payload) if isinstance(payload, str) else payload
    except json.JSONDecodeError:
        raise Malformed("input_json") from None
    if isinstance(value, dict) and isinstance(value.get("instances"), list):
        value = value["instances"]
    items = value if isinstance(value, list) and value and isinstance(value[0], dict | list) else [value]
    records = []
    for item in items:
        if isinstance(item, dict):
            records.append(item)
        elif isinstance(item, list) and len(item) == len(columns):
            records.append(dict(zip(columns, item, strict=True)))
        else:
            raise Malformed("input_shape")
    return records


def _scores(payload: Any, kind: str) -> list[float]:
    if kind == "csv":
        return [float(row[-1]) for row in _csv_rows(payload)]
    value = json.loads(payload) if isinstance(payload, str) else payload
    return _json_scores(value)


def _json_scores(value: Any) -> list[float]:
    if isinstance(value, bool):
        raise ValueError("boolean score")
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        for key in _SCORE_KEYS:
            if key in value:
                return _json_scores(value[key])
        raise ValueError("no score key")
    if isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):
            return [float(v[-1]) for v in value]
        return [s for v in value for s in _json_scores(v)]
    raise ValueError("unreadable score")


def parse_line(line: str, columns: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """Records of one capture line (each with score, ids and time) and whether its output was readable."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        raise Malformed("not_json") from None
    capture = event.get("captureData") if isinstance(event, dict) else None
    if not isinstance(capture, dict):
        raise Malformed("no_capture_data")
    if is_synthetic_capture(event.get("eventMetadata")):
        raise Synthetic()
    records = _records(*_decode(capture.get("endpointInput"), "input"), columns)
    scores: list[float] = []
    output_ok = "endpointOutput" in capture
    if output_ok:
        try:
            scores = _scores(*_decode(capture["endpointOutput"], "output"))
        except (Malformed, ValueError, TypeError, IndexError, json.JSONDecodeError):
            output_ok = False
        output_ok = output_ok and len(scores) == len(records)
    meta = event.get("eventMetadata") if isinstance(event.get("eventMetadata"), dict) else {}
    event_id = meta.get("eventId")
    base_id = meta.get("inferenceId") or event_id
    for i, record in enumerate(records):
        record["score"] = scores[i] if output_ok else np.nan
        record["inference_id"] = base_id if len(records) == 1 else f"{base_id}/{i}"
        record["event_id"] = event_id
        record["inference_time"] = meta.get("inferenceTime")
    return records, output_ok or "endpointOutput" not in capture


def parse_lines(lines: Iterable[str], columns: list[str], *, source: str = "") -> CaptureBatch:
    """Parse capture lines; the file's path supplies endpoint and variant when it follows SageMaker's layout."""
    match = PATH_PATTERN.search(source)
    where = {"variant": match["variant"] if match else None, "endpoint": match["endpoint"] if match else None}
    rows: list[dict[str, Any]] = []
    malformed: Counter[str] = Counter()
    events = synthetic = 0
    for line in lines:
        if not line.strip():
            continue
        events += 1
        try:
            records, output_ok = parse_line(line, columns)
        except Malformed as exc:
            malformed[str(exc)] += 1
            continue
        except Synthetic:
            synthetic += 1
            continue
        except (AttributeError, TypeError, ValueError):
            malformed["unreadable"] += 1
            continue
        if not output_ok:
            malformed["output_unreadable"] += 1
        rows.extend(record | where for record in records)
    return CaptureBatch(rows, malformed, events, synthetic=synthetic)
