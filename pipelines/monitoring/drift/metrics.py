"""Publish drift results as CloudWatch metrics (namespace `clinops/drift`), for dashboards and alarms.

Per feature (dimensions Model, Variant, Feature): PSI, KSStatistic (numbers), TotalVariation (categories),
JSDistance, MissingFraction, ContractViolationRate and Drift (1 flagged / 0 not). Per model and variant
(dimensions Model, Variant): RowsAnalysed, MalformedRecords, DriftedFeatures, Drift and InsufficientData, plus
ScorePSI, ScoreKS and ScoreMean. With attributions (`attribution.py`): MeanAbsContribution and AttributionDrift
per feature, AttributionDriftedFeatures per model and variant. Statistics that could not be computed are left
out (CloudWatch rejects NaN).

PutMetricData takes at most 1000 metrics per request (1 MB payload, 30 dimensions per metric; the API reference
of PutMetricData, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html),
so the data is sent in batches of `MAX_METRICS_PER_REQUEST`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pipelines.monitoring.drift.detect import DriftResult, FeatureDrift

NAMESPACE = "clinops/drift"
MAX_METRICS_PER_REQUEST = 1000
_FEATURE_METRICS = (
    ("PSI", "psi", "None"),
    ("KSStatistic", "ks", "None"),
    ("TotalVariation", "tv", "None"),
    ("JSDistance", "js", "None"),
    ("MissingFraction", "missing_fraction", "None"),
    ("ContractViolationRate", "violation_rate", "None"),
)


def _datum(name: str, value: float, dimensions: dict[str, str], at: datetime, unit: str = "None") -> dict[str, Any]:
    return {
        "MetricName": name,
        "Value": float(value),
        "Unit": unit,
        "Timestamp": at,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
    }


def _feature_data(f: FeatureDrift, dims: dict[str, str], at: datetime) -> list[dict[str, Any]]:
    data = [
        _datum(metric, getattr(f, attr), dims, at)
        for metric, attr, _ in _FEATURE_METRICS
        if not math.isnan(getattr(f, attr))
    ]
    if f.status != "insufficient-data" or f.reasons:
        data.append(_datum("Drift", 1.0 if f.status == "drift" else 0.0, dims, at))
    return data


def metric_data(result: DriftResult, timestamp: datetime | None = None) -> list[dict[str, Any]]:
    at = timestamp or datetime.now(UTC)
    model = {"Model": result.model, "Variant": result.variant}
    data = [
        _datum("RowsAnalysed", result.rows, model, at, "Count"),
        _datum("MalformedRecords", sum(result.malformed_records.values()), model, at, "Count"),
        _datum("InsufficientData", 1.0 if result.verdict == "insufficient-data" else 0.0, model, at),
    ]
    if result.verdict != "insufficient-data":
        data += [
            _datum("Drift", 1.0 if result.verdict == "drift" else 0.0, model, at),
            _datum("DriftedFeatures", len(result.drifted), model, at, "Count"),
        ]
        for name, f in result.features.items():
            data += _feature_data(f, {**model, "Feature": name}, at)
        score = result.score
        if score is not None:
            for metric, value in (("ScorePSI", score.psi), ("ScoreKS", score.ks), ("ScoreMean", score.mean)):
                if not math.isnan(value):
                    data.append(_datum(metric, value, model, at))
        attributions = result.attributions
        if attributions is not None and attributions.status != "insufficient-data":
            data.append(_datum("AttributionDriftedFeatures", len(attributions.drifted), model, at, "Count"))
            for name, a in attributions.features.items():
                dims = {**model, "Feature": name}
                data.append(_datum("MeanAbsContribution", a.current, dims, at))
                data.append(_datum("AttributionDrift", 1.0 if a.status == "drift" else 0.0, dims, at))
    return data


def batches(data: list[dict[str, Any]], size: int = MAX_METRICS_PER_REQUEST) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def publish(
    result: DriftResult, cloudwatch: Any | None = None, *, namespace: str = NAMESPACE, timestamp: datetime | None = None
) -> int:
    """Send the result's metrics; returns how many were sent."""
    if cloudwatch is None:
        import boto3

        cloudwatch = boto3.client("cloudwatch")
    data = metric_data(result, timestamp)
    for batch in batches(data):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)
    return len(data)
