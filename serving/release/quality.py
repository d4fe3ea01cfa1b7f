"""A package's registered metrics against the stack's quality thresholds (`models[].quality`).

Where the training pipeline puts them (`pipelines/definitions/steps.py`, `_register_step`), read in this order:
1. `CustomerMetadataProperties` (string values, travel with DescribeModelPackage, so cross-account releases
   need no bucket access): `auc`, `brier`, `max_subgroup_auc_gap`, `operating_threshold`;
2. `ModelMetrics.ModelQuality.Statistics` (model-quality.json, SageMaker Model Monitor's binary-classification
   shape): `binary_classification_metrics.auc.value`;
3. `ModelMetrics.Bias.Report` (fairness.json): the largest `attributes.*.gaps.auc.value`.
A metric found nowhere is a refusal: an unmeasured model is not released to patients.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from clinops.exitcodes import QualityBelowThreshold
from clinops.models import QualityGate
from serving.release.aws import StackAws, error_code

METADATA_KEYS = {
    "auc": "auc",
    "brier": "brier",
    "max_subgroup_auc_gap": "max_subgroup_auc_gap",
    "operating_threshold": "operating_threshold",
}


@dataclass(frozen=True)
class PackageMetrics:
    auc: float | None
    brier: float | None
    max_subgroup_auc_gap: float | None
    operating_threshold: float | None
    sources: dict[str, str]

    def as_evidence(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "brier": self.brier,
            "max_subgroup_auc_gap": self.max_subgroup_auc_gap,
            "sources": dict(sorted(self.sources.items())),
        }


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _s3_json(aws: StackAws, uri: str) -> Any:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = aws.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def _from_statistics(aws: StackAws, uri: str) -> float | None:
    return _number(_s3_json(aws, uri).get("binary_classification_metrics", {}).get("auc", {}).get("value"))


def _from_fairness(aws: StackAws, uri: str) -> float | None:
    attributes = _s3_json(aws, uri).get("attributes") or {}
    gaps = [(a.get("gaps") or {}).get("auc") for a in attributes.values()]
    values = [None if g is None else _number(g.get("value")) for g in gaps]
    known = [v for v in values if v is not None]
    # an attribute that could not be judged leaves the gap unknown
    return max(known) if gaps and len(known) == len(values) else None


def read_metrics(package: dict[str, Any], aws: StackAws | None) -> PackageMetrics:
    metadata = package.get("CustomerMetadataProperties") or {}
    found: dict[str, float | None] = {name: _number(metadata.get(key)) for name, key in METADATA_KEYS.items()}
    sources = {name: "CustomerMetadataProperties" for name, value in found.items() if value is not None}
    model_metrics = package.get("ModelMetrics") or {}
    fallbacks = (
        ("auc", ("ModelQuality", "Statistics"), _from_statistics),
        ("max_subgroup_auc_gap", ("Bias", "Report"), _from_fairness),
    )
    for name, (section, part), reader in fallbacks:
        uri = ((model_metrics.get(section) or {}).get(part) or {}).get("S3Uri")
        if found[name] is not None or not uri or aws is None:
            continue
        try:
            found[name] = reader(aws, uri)
        except (ClientError, ValueError, AttributeError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            sources[f"{name}_unreadable"] = f"{uri} ({code})"
            continue
        if found[name] is not None:
            sources[name] = uri
    return PackageMetrics(sources=sources, **found)


def check_quality(arn: str, metrics: PackageMetrics, gate: QualityGate) -> None:
    """Raise QualityBelowThreshold naming every metric that is missing or outside its threshold."""
    rules = (
        ("auc", metrics.auc, gate.min_auc, "at least"),
        ("max_subgroup_auc_gap", metrics.max_subgroup_auc_gap, gate.max_subgroup_auc_gap, "at most"),
        ("brier", metrics.brier, gate.max_brier, "at most"),
    )
    problems = []
    for name, value, limit, relation in rules:
        if value is None:
            problems.append(f"{name} is not recorded on the package (needs {relation} {limit})")
        elif (value < limit) if relation == "at least" else (value > limit):
            problems.append(f"{name} {value:.4f} must be {relation} {limit}")
    if problems:
        raise QualityBelowThreshold(
            f"{arn} does not meet the stack's quality thresholds: " + "; ".join(problems) + ". Fix: retrain, or "
            "have the pipeline record the metric (CustomerMetadataProperties: auc, brier, max_subgroup_auc_gap)",
            {"metrics": metrics.as_evidence(), "thresholds": gate.model_dump()},
        )
