"""S3 capture reading (paginated) and CloudWatch publishing, against moto."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines.data.synthetic import Injections
from pipelines.monitoring.drift.detect import detect_drift
from pipelines.monitoring.drift.metrics import MAX_METRICS_PER_REQUEST, NAMESPACE, batches, metric_data, publish
from pipelines.monitoring.drift.simulate import write_capture
from pipelines.monitoring.drift.sources import S3Location, list_s3_keys, read_capture_s3
from tests.pipelines.monitoring.helpers import baseline, window

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def _upload(client: Any, folder: Path, bucket: str, prefix: str) -> int:
    files = [p for p in folder.rglob("*.jsonl")]
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return len(files)


@mock_aws
def test_capture_is_read_from_s3_across_pages(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="capture")
    frame = window(400, seed=21, injections=Injections(unit_change="creatinine"))
    columns = baseline().columns
    write_capture(frame[columns], frame["score"].to_numpy(), tmp_path, columns, encoding="BASE64")
    uploaded = _upload(s3, tmp_path, "capture", "datacapture")
    s3.put_object(Bucket="capture", Key="datacapture/readme.txt", Body=b"not capture")
    location = S3Location.parse("s3://capture/datacapture")
    keys = list_s3_keys(s3, location, page_size=7)  # several pages, as a month of hourly files would need
    assert len(keys) == uploaded > 7
    batch = read_capture_s3("s3://capture/datacapture", columns, s3)
    assert batch.events == 400 and len(batch.frame) == 400 and not batch.malformed
    assert set(batch.frame["variant"]) == {"AllTraffic"}
    assert detect_drift(baseline(), batch.frame).drifted == ["creatinine"]


@mock_aws
def test_metrics_reach_cloudwatch_with_model_variant_feature_dimensions() -> None:
    result = detect_drift(
        baseline(), window(3000, seed=22, injections=Injections(unit_change="creatinine")), variant="blue"
    )
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    sent = publish(result, cloudwatch, timestamp=datetime.now(UTC))
    listed = cloudwatch.get_paginator("list_metrics").paginate(Namespace=NAMESPACE).build_full_result()["Metrics"]
    assert len(listed) == sent == len(metric_data(result))
    keyed = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"]))) for m in listed}
    assert ("PSI", (("Feature", "creatinine"), ("Model", "readmission-risk"), ("Variant", "blue"))) in keyed
    assert ("Drift", (("Model", "readmission-risk"), ("Variant", "blue"))) in keyed
    drift_flags = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="Drift",
        Statistics=["Maximum"],
        Period=60,
        Dimensions=[
            {"Name": "Model", "Value": "readmission-risk"},
            {"Name": "Variant", "Value": "blue"},
            {"Name": "Feature", "Value": "creatinine"},
        ],
        StartTime=datetime(2020, 1, 1, tzinfo=UTC),
        EndTime=datetime(2100, 1, 1, tzinfo=UTC),
    )["Datapoints"]
    assert [p["Maximum"] for p in drift_flags] == [1.0]


def test_metric_batches_stay_within_the_put_metric_data_limit() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
            assert Namespace == NAMESPACE
            self.calls.append(len(MetricData))

    result = detect_drift(baseline(), window(2000, seed=23))
    data = metric_data(result)
    assert all(len(b) <= MAX_METRICS_PER_REQUEST for b in batches(data * 40))
    assert [len(b) for b in batches(list(range(2501)))] == [1000, 1000, 501]
    recorder = Recorder()
    assert publish(result, recorder) == sum(recorder.calls) == len(data)
    assert all(not any(v != v for v in [d["Value"]]) for d in data)  # no NaN ever reaches CloudWatch


def test_insufficient_data_publishes_no_statistics() -> None:
    result = detect_drift(baseline(), window(50, seed=24))
    names = {d["MetricName"] for d in metric_data(result)}
    assert names == {"RowsAnalysed", "MalformedRecords", "InsufficientData"}
    assert os.environ["AWS_DEFAULT_REGION"] == REGION
