"""`clinops shadow report`: read both variants' data capture, compare them, write the report and the evidence.

Capture comes from the endpoint's own `DataCaptureConfig.DestinationS3Uri` (`s3://<capture bucket>/<model>/`,
then `<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`) or from a local copy of that tree; only requests since the
window start are compared (default: when the endpoint last changed configuration, i.e. when this shadow went
live). Operational numbers come from CloudWatch (`AWS/SageMaker`, per variant). Parsing reuses
`pipelines.monitoring.drift.capture`; the model's feature contract tells it the input columns.

Given a way to load each package's model (`package_model_loader`: its model.tar.gz), the report also ranks the
features each model leans on - mean |exact contribution| (`pipelines.explain`) over the same production requests
of the window - champion and shadow side by side. That part is information for the reviewer, never a criterion:
when it cannot be computed the report says why and the verdict is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import re
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clinops import names
from clinops.config import StackConfig
from clinops.exitcodes import ExitCode, UnusableInput
from clinops.models import ModelConfig, package_version
from serving.release.aws import StackAws
from serving.release.endpoint_state import describe_endpoint
from serving.release.evidence import CHECK_SHADOW, EvidenceLocation, record
from serving.release.package import describe_package
from serving.release.quality import read_metrics
from serving.release.shadow import PASS, ShadowComparison, ShadowCriteria, VariantOperations, compare

TOP_FEATURES = 5
ModelLoader = Callable[[str], Any]  # package ARN -> its fitted model
_HOUR_IN_KEY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


@dataclass(frozen=True)
class ShadowInputs:
    """What the comparison needs besides the capture: which packages, their thresholds, and the window."""

    production_arn: str
    shadow_arn: str
    production_threshold: float
    shadow_threshold: float
    since: dt.datetime
    until: dt.datetime
    threshold_sources: dict[str, str]


def model_contract(model: str, contract: Path | None) -> Any:
    from pipelines.contracts import builtin_contract_path, load_contract
    from pipelines.errors import InputError

    try:
        return load_contract(contract or builtin_contract_path(model))
    except InputError as exc:
        raise UnusableInput(f"cannot read the feature contract of {model}: {exc}") from None


def feature_columns(model: str, contract: Path | None) -> list[str]:
    return list(model_contract(model, contract).feature_columns)


def package_model_loader(aws: StackAws) -> ModelLoader:
    """Load a package's model from its model.tar.gz (the bundle format of `pipelines.bundle`)."""
    from serving.release.baseline import model_data_url

    def load(arn: str) -> Any:
        import joblib  # the bundle's own serialisation; the registry's bucket is the trust boundary

        bucket, key = model_data_url(describe_package(aws, arn), arn)
        archive = aws.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.rsplit("/", 1)[-1] == "model.joblib":
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return joblib.load(io.BytesIO(handle.read()))
        raise ValueError(f"{arn}: model.tar.gz holds no model.joblib")

    return load


def _ranked(means: dict[str, float]) -> list[str]:
    return sorted(means, key=lambda feature: (-means[feature], feature))


def attribution_sides(production: Any, shadow: Any, requests: pd.DataFrame, contract: Any) -> dict[str, Any]:
    """Mean |contribution| per feature of both models over the same requests, and each model's top features."""
    from pipelines.explain import UNITS, attribution_summary, explainer_for
    from pipelines.monitoring.drift.attribution import model_frame

    frame = model_frame(requests, contract)
    means: dict[str, dict[str, float]] = {}
    rows = 0
    for side, model in (("production", production), ("shadow", shadow)):
        summary = attribution_summary(explainer_for(model, contract.feature_columns), frame, "production requests")
        means[side], rows = summary["mean_abs"], summary["rows"]
    ranked = {side: _ranked(m)[:TOP_FEATURES] for side, m in means.items()}
    return {
        "computed_on": "production requests in the window (both models explain the same inputs)",
        "rows": rows,
        "units": UNITS,
        "top": [
            {"rank": i + 1, "production": ranked["production"][i], "shadow": ranked["shadow"][i]}
            for i in range(min(len(ranked["production"]), len(ranked["shadow"])))
        ],
        "mean_abs": {f: {side: means[side][f] for side in means} for f in contract.feature_columns},
    }


def _hour_of(key: str) -> dt.datetime | None:
    match = _HOUR_IN_KEY.search(key)
    if not match:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


def read_capture(source: str, columns: list[str], since: dt.datetime, s3_client: Any = None) -> pd.DataFrame:
    """Scored records of every variant in `source`, inferred at or after `since`."""
    from pipelines.errors import InputError
    from pipelines.monitoring.drift.sources import S3Location, list_s3_keys, read_capture_s3, read_current

    try:
        if source.startswith("s3://"):
            keys = list_s3_keys(s3_client, S3Location.parse(source))
            floor = since.replace(minute=0, second=0, microsecond=0)
            keys = [k for k in keys if (_hour_of(k) or floor) >= floor]  # skip whole hours before the window
            frame = read_capture_s3(source, columns, s3_client, keys=keys).frame
        else:
            frame = read_current(source, columns).frame
    except InputError as exc:
        raise UnusableInput(str(exc)) from None
    if frame.empty or "variant" not in frame:
        return pd.DataFrame(columns=["inference_id", "score", "variant", "endpoint", "inference_time"])
    times = pd.to_datetime(frame.get("inference_time"), utc=True, errors="coerce")
    return frame.loc[times.isna() | (times >= pd.Timestamp(since))]


def _threshold(aws: StackAws, arn: str, fallback: float | None) -> tuple[float, str]:
    metrics = read_metrics(describe_package(aws, arn), None)
    if metrics.operating_threshold is not None:
        return metrics.operating_threshold, "package metadata"
    if fallback is not None:
        return fallback, "--threshold"
    raise UnusableInput(
        f"{arn} records no operating_threshold (CustomerMetadataProperties); fix: have the pipeline record it, or "
        "pass --threshold with the clinically agreed value"
    )


def resolve_inputs(
    aws: StackAws,
    config: StackConfig,
    model: ModelConfig,
    *,
    shadow_arn: str | None,
    threshold: float | None,
    since: dt.datetime | None,
    now: dt.datetime,
    endpoint: dict[str, Any] | None,
) -> ShadowInputs:
    candidate = shadow_arn or model.serving.shadow_package_arn
    if not model.package_arn or not candidate:
        raise UnusableInput(
            f"{model.name} in {config.stack} needs a production package and a shadow package (serving."
            "shadowPackageArn, or --package) to compare"
        )
    production_threshold, p_source = _threshold(aws, model.package_arn, threshold)
    shadow_threshold, s_source = _threshold(aws, candidate, threshold)
    start = since or (endpoint or {}).get("LastModifiedTime") or now - dt.timedelta(days=1)
    start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
    return ShadowInputs(
        model.package_arn,
        candidate,
        production_threshold,
        shadow_threshold,
        start,
        now,
        {"production": p_source, "shadow": s_source},
    )


def operations(aws: StackAws, endpoint: str, since: dt.datetime, until: dt.datetime) -> dict[str, VariantOperations]:
    """Invocations, 5XX errors and p99 latency of both variants over the window, from one GetMetricData."""
    period = max(60, math.ceil((until - since).total_seconds() / 60) * 60)
    queries, keys = [], {}
    for variant in (names.VARIANT, names.SHADOW_VARIANT):
        for metric, stat in (("Invocations", "Sum"), ("Invocation5XXErrors", "Sum"), ("ModelLatency", "p99")):
            qid = f"{variant.lower()}_{metric.lower()}"
            keys[qid] = (variant, metric)
            queries.append(
                {
                    "Id": qid,
                    "ReturnData": True,
                    "MetricStat": {
                        "Stat": stat,
                        "Period": period,
                        "Metric": {
                            "Namespace": "AWS/SageMaker",
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": endpoint},
                                {"Name": "VariantName", "Value": variant},
                            ],
                        },
                    },
                }
            )
    answer = aws.call("cloudwatch", "get_metric_data", MetricDataQueries=queries, StartTime=since, EndTime=until)
    values: dict[tuple[str, str], list[float]] = {}
    for result in answer.get("MetricDataResults", []):
        values[keys[result["Id"]]] = [float(v) for v in result.get("Values", [])]
    found: dict[str, VariantOperations] = {}
    for variant in (names.VARIANT, names.SHADOW_VARIANT):
        invocations = values.get((variant, "Invocations"), [])
        if not invocations:
            continue
        latency = values.get((variant, "ModelLatency"), [])
        found[variant] = VariantOperations(
            invocations=sum(invocations),
            errors_5xx=sum(values.get((variant, "Invocation5XXErrors"), [])),
            # Percentiles do not add up across periods; the worst period's p99 is the conservative answer.
            latency_p99_ms=max(latency) / 1000 if latency else None,  # SageMaker reports microseconds
        )
    return found


@dataclass
class ShadowReport:
    stack: str
    model: str
    inputs: ShadowInputs
    criteria: ShadowCriteria
    capture_source: str
    comparison: ShadowComparison
    paths: list[Path]
    evidence_seq: int | None = None
    attributions: dict[str, Any] | None = None  # `attribution_sides`, when both models could be explained
    attribution_note: str = "not computed (no model loader)"

    @property
    def exit_code(self) -> ExitCode:
        if self.comparison.passed:
            return ExitCode.OK
        return ExitCode.SHADOW_FAILED if self.comparison.verdict == "fail" else ExitCode.SHADOW_INCONCLUSIVE

    def document(self) -> dict[str, Any]:
        inputs = asdict(self.inputs) | {"since": self.inputs.since.isoformat(), "until": self.inputs.until.isoformat()}
        return finite(
            {
                "stack": self.stack,
                "model": self.model,
                "capture_source": self.capture_source,
                "inputs": inputs,
                "criteria": asdict(self.criteria),
                **self.comparison.as_dict(),
                "attributions": self.attributions,
                "attribution_note": self.attribution_note,
            }
        )


def finite(value: Any) -> Any:
    """JSON (and the evidence log) refuse NaN and infinities: an undefined statistic is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


def markdown(report: ShadowReport) -> str:
    doc, comparison = report.document(), report.comparison
    lines = [
        f"# Shadow report: {report.model} in {report.stack} - {comparison.verdict.upper()}",
        "",
        f"- production: `{report.inputs.production_arn}` (threshold {_fmt(report.inputs.production_threshold)})",
        f"- shadow: `{report.inputs.shadow_arn}` (threshold {_fmt(report.inputs.shadow_threshold)})",
        f"- window: {doc['inputs']['since']} to {doc['inputs']['until']}; capture: {report.capture_source}",
        "",
        "| criterion | value | limit | result |",
        "|---|---|---|---|",
    ]
    for check in comparison.checks:
        result = {True: "pass", False: "FAIL", None: "-"}[check["passed"]]
        lines.append(f"| {check['criterion']} | {_fmt(check['value'])} | {_fmt(check['limit'])} | {result} |")
    lines += ["", "| sample | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in comparison.counts.items()]
    lines += ["", "| score statistic | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in comparison.scores.items()]
    for variant, ops in comparison.operations.items():
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in ops.items()) if ops else "none"
        lines.append(f"\n{variant} operations: {shown}")
    if comparison.reasons:
        lines += ["", "Reasons:", *[f"- {r}" for r in comparison.reasons]]
    lines += ["", "## Top features (what each model leans on; information, not a criterion)", ""]
    sides = report.attributions
    if sides is None:
        lines.append(f"Attributions {report.attribution_note}.")
    else:
        lines += [
            f"Mean |contribution| ({sides['units']}) over {sides['rows']} {sides['computed_on']}.",
            "",
            "| rank | production | shadow |",
            "|---|---|---|",
        ]
        means = sides["mean_abs"]
        for row in sides["top"]:
            p, s = row["production"], row["shadow"]
            lines.append(f"| {row['rank']} | {p} ({_fmt(means[p]['production'])}) | {s} ({_fmt(means[s]['shadow'])}) |")
    return "\n".join(lines) + "\n"


def write_report(report: ShadowReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "shadow-report.json", out_dir / "shadow-report.md"
    json_path.write_text(json.dumps(report.document(), indent=2, sort_keys=True) + "\n")
    md_path.write_text(markdown(report))
    report.paths = [json_path, md_path]
    return report.paths


def default_out_dir(stack: str, model: str, shadow_arn: str) -> Path:
    return Path("out") / "shadow" / stack / f"{model}-v{package_version(shadow_arn)}"


def run_report(
    aws: StackAws,
    config: StackConfig,
    model: ModelConfig,
    *,
    criteria: ShadowCriteria,
    capture: str | None = None,
    contract: Path | None = None,
    shadow_arn: str | None = None,
    threshold: float | None = None,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
    use_cloudwatch: bool = True,
    models: ModelLoader | None = None,
) -> ShadowReport:
    now = now or dt.datetime.now(dt.UTC)
    endpoint_name = names.endpoint_name(config.stack, model.name)
    endpoint = describe_endpoint(aws, endpoint_name) if capture is None or since is None else None
    inputs = resolve_inputs(
        aws, config, model, shadow_arn=shadow_arn, threshold=threshold, since=since, now=now, endpoint=endpoint
    )
    if capture is None:
        destination = ((endpoint or {}).get("DataCaptureConfig") or {}).get("DestinationS3Uri")
        if not destination:
            raise UnusableInput(f"{endpoint_name} has no data capture destination; pass --capture DIR|s3://...")
        capture = f"{destination.rstrip('/')}/{endpoint_name}/"
    model_contract_ = model_contract(model.name, contract)
    columns = list(model_contract_.feature_columns)
    rows = read_capture(capture, columns, inputs.since, aws.client("s3") if capture.startswith("s3://") else None)
    if len(rows) and not (rows["endpoint"] == endpoint_name).any():
        raise UnusableInput(
            f"no capture of {endpoint_name} in {capture}; fix: point --capture at the data capture tree "
            f"(<prefix>/{endpoint_name}/<variant>/yyyy/mm/dd/hh/*.jsonl)"
        )
    rows = rows.loc[rows["endpoint"] == endpoint_name]  # a shared capture folder may hold other endpoints
    ops = operations(aws, endpoint_name, inputs.since, inputs.until) if use_cloudwatch else {}
    comparison = compare(
        rows.loc[rows["variant"] == names.VARIANT],
        rows.loc[rows["variant"] == names.SHADOW_VARIANT],
        production_threshold=inputs.production_threshold,
        shadow_threshold=inputs.shadow_threshold,
        criteria=criteria,
        production_ops=ops.get(names.VARIANT),
        shadow_ops=ops.get(names.SHADOW_VARIANT),
    )
    report = ShadowReport(config.stack, model.name, inputs, criteria, capture, comparison, [])
    if models is not None:  # last, and never fatal: the verdict above stands either way
        requests = rows.loc[rows["variant"] == names.VARIANT]  # the capture reader already left out synthetic lines
        try:
            report.attributions = attribution_sides(
                models(inputs.production_arn), models(inputs.shadow_arn), requests, model_contract_
            )
            report.attribution_note = "exact TreeSHAP"
        except Exception as exc:  # a model that cannot be read or explained: say so, keep the report
            first = (str(exc).splitlines() or [""])[0][:200]
            report.attribution_note = f"not computed ({type(exc).__name__}: {first})"
    return report


def record_report(report: ShadowReport, evidence: EvidenceLocation, *, actor: str, reason: str) -> ShadowReport:
    document = report.document()
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    details = {
        "passed": report.comparison.verdict == PASS,
        "verdict": report.comparison.verdict,
        "production_package": report.inputs.production_arn,
        "counts": report.comparison.counts,
        "scores": report.comparison.scores,
        "operations": report.comparison.operations,
        "checks": report.comparison.checks,
        "reasons": report.comparison.reasons,
        "criteria": document["criteria"],
        "window": {"since": document["inputs"]["since"], "until": document["inputs"]["until"]},
        "report_sha256": digest,
        "report_files": [str(p) for p in report.paths],
    }
    entry = record(
        evidence.log(report.stack),
        "shadow",
        CHECK_SHADOW,
        model=report.model,
        package_arn=report.inputs.shadow_arn,
        actor=actor,
        reason=reason,
        details=finite(details),
    )
    report.evidence_seq = entry.seq
    return report
