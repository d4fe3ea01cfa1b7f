"""Publish model quality to CloudWatch (namespace `clinops/quality`) and define the alarms on decay.

Data points carry the run's time, not the window's: the judged window ends weeks ago (outcomes lag) and
CloudWatch does not accept points older than two weeks. Dimensions: Model and Variant; subgroup AUCs add
Attribute and Group. Batching follows the drift publisher (at most 1000 metrics per PutMetricData request).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pipelines.monitoring.drift.metrics import batches
from pipelines.monitoring.quality.decay import QualityResult

NAMESPACE = "clinops/quality"
DAY = 86_400


def _datum(name: str, value: float, dims: dict[str, str], at: datetime, unit: str = "None") -> dict[str, Any]:
    return {
        "MetricName": name,
        "Value": float(value),
        "Unit": unit,
        "Timestamp": at,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }


def metric_data(result: QualityResult, timestamp: datetime | None = None) -> list[dict[str, Any]]:
    at = timestamp or datetime.now(UTC)
    dims = {"Model": result.model, "Variant": result.variant}
    data = [
        _datum("InsufficientData", 1.0 if result.verdict == "insufficient-data" else 0.0, dims, at),
        _datum("LabelledInferences", result.counts.get("labelled", 0), dims, at, "Count"),
        _datum("PendingInferences", result.counts.get("pending", 0), dims, at, "Count"),
    ]
    if result.judged_window is None:
        return data
    window = result.windows[result.judged_window]
    m = window.metrics
    values = {
        "Decay": 1.0 if result.verdict == "decay" else 0.0,
        "AUC": m["auc"],
        "AUCLower95": m["auc_ci95"][0],
        "Brier": m["brier"],
        "CalibrationSlope": m["calibration_slope"],
        "CalibrationIntercept": m["calibration_intercept"],
        "ObservedToExpected": m["observed_expected"],
        "LabelCoverage": window.label_coverage,
        "Sensitivity": m.get("sensitivity", math.nan),
        "AlertRate": m.get("alert_rate", math.nan),
    }
    data += [_datum(name, v, dims, at) for name, v in values.items() if not math.isnan(v)]
    for attribute, table in window.subgroups.items():
        for group, row in table["groups"].items():
            if row["status"] == "ok":
                data.append(_datum("SubgroupAUC", row["auc"], {**dims, "Attribute": attribute, "Group": group}, at))
    return data


def publish(result: QualityResult, cloudwatch: Any | None = None, *, timestamp: datetime | None = None) -> int:
    if cloudwatch is None:
        import boto3

        cloudwatch = boto3.client("cloudwatch")
    data = metric_data(result, timestamp)
    for batch in batches(data):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=batch)
    return len(data)


def alarm_specs(model: str, variant: str, actions: list[str] | None = None) -> list[dict[str, Any]]:
    """put_metric_alarm arguments: decay (any daily run saying so) and a stale backtest (no run for 8 days)."""
    dims = [{"Name": "Model", "Value": model}, {"Name": "Variant", "Value": variant}]
    common = {
        "Namespace": NAMESPACE,
        "Dimensions": dims,
        "Period": DAY,
        "AlarmActions": actions or [],
        "OKActions": actions or [],
    }
    return [
        {
            **common,
            "AlarmName": f"{model}-{variant}-quality-decay",
            "MetricName": "Decay",
            "Statistic": "Maximum",
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
            "AlarmDescription": "Model quality on adjudicated outcomes decayed (clinops quality): see the runbook.",
        },
        {
            **common,
            "AlarmName": f"{model}-{variant}-quality-backtest-stale",
            "MetricName": "LabelledInferences",
            "Statistic": "SampleCount",
            "Threshold": 1.0,
            "ComparisonOperator": "LessThanThreshold",
            "EvaluationPeriods": 8,
            "TreatMissingData": "breaching",
            "AlarmDescription": "No quality backtest has reported for 8 days: decay would go unnoticed.",
        },
    ]


def ensure_alarms(cloudwatch: Any, specs: list[dict[str, Any]]) -> list[str]:
    """Create or update the alarms (put_metric_alarm is an upsert by name)."""
    for spec in specs:
        cloudwatch.put_metric_alarm(**spec)
    return [spec["AlarmName"] for spec in specs]
