"""`shadow report`: the comparison's verdicts, and the whole report from capture files to evidence."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinops import names
from clinops.config import load_from_stack_file
from clinops.exitcodes import ExitCode, UnusableInput
from serving.release.evidence import CHECK_DEPLOYMENT, CHECK_SHADOW, EvidenceLocation, trusted_history
from serving.release.promotion import check_promotion
from serving.release.release import find_model
from serving.release.shadow import FAIL, INCONCLUSIVE, PASS, ShadowCriteria, VariantOperations, compare
from serving.release.shadow_report import record_report, run_report, write_report
from tests.serving.release.helpers import (
    ACTOR,
    GOOD_METRICS,
    MODEL,
    NOW,
    Registry,
    endpoint_description,
    seed_evidence,
    stack_aws,
    stubbed,
)

FEATURES = "71,F,medicare,emergency,5,2,1,3,12,6.1,1.1,12.9,139,3.6,home"  # 15 columns of the contract
HEALTHY = {"production": VariantOperations(1000, 2, 120.0), "shadow": VariantOperations(500, 1, 150.0)}
CRITERIA = ShadowCriteria(min_matched=200, latency_p99_ms=300)


def scores(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).beta(2, 5, n)


def frame(values: np.ndarray, ids: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"inference_id": ids or [f"req-{i}" for i in range(len(values))], "score": values})


def _compare(production: pd.DataFrame, shadow: pd.DataFrame, ops: dict | None = HEALTHY, **kwargs):
    ops = ops or {}
    return compare(
        production,
        shadow,
        production_threshold=0.3,
        shadow_threshold=0.3,
        criteria=CRITERIA,
        production_ops=ops.get("production"),
        shadow_ops=ops.get("shadow"),
        **kwargs,
    )


def test_a_close_candidate_passes() -> None:
    p = scores(400)
    s = np.clip(p + np.random.default_rng(2).normal(0, 0.01, len(p)), 0, 1)
    result = _compare(frame(p), frame(s[:300]))  # the shadow sees a sample of the requests
    assert result.verdict == PASS, result.reasons
    assert result.counts["matched_valid"] == 300 and result.counts["production_unmatched"] == 100
    assert result.scores["agreement"] > 0.95 and result.scores["mean_abs_diff"] < 0.02


def test_a_shifted_candidate_fails_on_agreement_and_distribution() -> None:
    p = scores(400)
    result = _compare(frame(p), frame(np.clip(p + 0.15, 0, 1)))
    assert result.verdict == FAIL
    failed = {c["criterion"] for c in result.checks if c["passed"] is False}
    assert {"agreement", "mean_abs_diff", "ks_statistic"} <= failed


def test_slow_or_erroring_shadow_fails_even_when_scores_agree() -> None:
    p = scores(300)
    slow = {"production": VariantOperations(1000, 2, 120.0), "shadow": VariantOperations(500, 30, 450.0)}
    result = _compare(frame(p), frame(p), ops=slow)
    assert result.verdict == FAIL
    assert {c["criterion"] for c in result.checks if c["passed"] is False} == {
        "error_rate_increase",
        "shadow_latency_p99_ms",
    }


def test_too_few_pairs_or_no_operational_metrics_is_inconclusive() -> None:
    p = scores(150)
    result = _compare(frame(p), frame(p))
    assert result.verdict == INCONCLUSIVE
    assert result.reasons == ["only 150 matched requests with valid scores (needs 200)"]
    same = scores(300)
    result = _compare(frame(same), frame(same), ops=None)
    assert result.verdict == INCONCLUSIVE
    assert result.reasons == ["no CloudWatch invocation metrics for both variants over the window"]


def test_duplicate_ids_and_invalid_scores_are_not_paired() -> None:
    p = scores(300)
    ids = [f"req-{i}" for i in range(300)]
    ids[1] = ids[0]  # an id seen twice in one variant cannot be paired safely
    shadow = p.copy()
    shadow[5:10] = np.nan
    result = _compare(frame(p, ids), frame(shadow))
    assert result.counts["ambiguous_ids"] == 2 and result.counts["matched_valid"] == 293
    assert result.counts["shadow_invalid"] == 5
    assert {c["criterion"]: c["passed"] for c in result.checks}["shadow_invalid_rate"] is False  # 5/300 > 1%


# -- the whole report --------------------------------------------------------------------------------------


def capture_line(request: str, score: float, when: dt.datetime) -> str:
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": FEATURES,
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv",
                    "mode": "OUTPUT",
                    "data": f"{score:.6f}",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceId": request,
                "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "eventVersion": "0",
        }
    )


def write_capture(root: Path, stack: str, variant: str, rows: dict[str, float], when: dt.datetime) -> str:
    folder = root / names.endpoint_name(stack, MODEL) / variant / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(capture_line(r, s, when) for r, s in rows.items()) + "\n"
    (folder / f"{uuid.uuid4()}.jsonl").write_text(text)
    return text


def metric_data(production: VariantOperations, shadow: VariantOperations) -> dict:
    results = []
    for variant, ops in ((names.VARIANT, production), (names.SHADOW_VARIANT, shadow)):
        for metric, value in (
            ("invocations", ops.invocations),
            ("invocation5xxerrors", ops.errors_5xx),
            ("modellatency", (ops.latency_p99_ms or 0) * 1000),
        ):
            results.append(
                {
                    "Id": f"{variant.lower()}_{metric}",
                    "Label": metric,
                    "Timestamps": [NOW],
                    "Values": [float(value)],
                    "StatusCode": "Complete",
                }
            )
    return {"MetricDataResults": results}


def _stubs(registry: Registry, production: str, candidate: str, endpoint: dict | None = None, ops: dict = HEALTHY):
    sagemaker, stub = stubbed("sagemaker")
    if endpoint:
        stub.add_response("describe_endpoint", endpoint, {"EndpointName": endpoint["EndpointName"]})
    for arn in (production, candidate):
        stub.add_response("describe_model_package", registry.describe(arn), {"ModelPackageName": arn})
    cloudwatch, cw_stub = stubbed("cloudwatch")
    cw_stub.add_response("get_metric_data", metric_data(ops["production"], ops["shadow"]))
    return {"sagemaker": sagemaker, "cloudwatch": cloudwatch}


def test_report_from_local_capture_passes_and_unlocks_the_prod_canary(session, project, registry, tmp_path) -> None:
    _, production, _, candidate = registry.approved(versions=4)  # prod pins v2; v4 is the candidate
    config = load_from_stack_file("prod", project)
    capture = tmp_path / "capture"
    when = NOW - dt.timedelta(hours=1)
    p = scores(260)
    write_capture(capture, "prod", names.VARIANT, {f"req-{i}": s for i, s in enumerate(p)}, when)
    write_capture(capture, "prod", names.SHADOW_VARIANT, {f"req-{i}": s + 0.004 for i, s in enumerate(p[:240])}, when)
    stale = when - dt.timedelta(days=2)  # an earlier shadow's traffic, before the window
    write_capture(capture, "prod", names.SHADOW_VARIANT, {f"old-{i}": 0.9 for i in range(50)}, stale)
    aws = stack_aws(session, **_stubs(registry, production, candidate))
    report = run_report(
        aws,
        config,
        find_model(config, MODEL),
        criteria=CRITERIA,
        capture=str(capture),
        shadow_arn=candidate,
        since=NOW - dt.timedelta(hours=3),
        now=NOW,
    )
    assert report.exit_code == ExitCode.OK, report.comparison.reasons
    assert report.comparison.counts["matched_valid"] == 240 and report.comparison.counts["shadow_rows"] == 240
    paths = write_report(report, tmp_path / "report")
    assert json.loads(paths[0].read_text())["verdict"] == "pass"
    assert "Shadow report: readmission-risk in prod - PASS" in paths[1].read_text()
    evidence = EvidenceLocation(str(tmp_path / "evidence"))
    record_report(report, evidence, actor=ACTOR, reason="shadow comparison before canary")
    [entry] = trusted_history(evidence.log("prod"), MODEL)
    assert (entry.details["check"], entry.details["passed"], entry.package_arn) == (CHECK_SHADOW, True, candidate)
    assert entry.details["production_package"] == production and entry.details["counts"]["matched"] == 240
    seed_evidence(evidence, "staging", "verification", CHECK_DEPLOYMENT, candidate, passed=True)
    proof = check_promotion(config, MODEL, candidate, shadow=False, evidence=evidence, root=project)
    assert proof["shadow_report"]["seq"] == entry.seq


def test_report_reads_s3_capture_since_the_shadow_went_live(session, project, registry, tmp_path) -> None:
    _, _, production, candidate = registry.approved(versions=4)
    config = load_from_stack_file("dev", project)  # dev pins v3
    s3 = session.client("s3")
    s3.create_bucket(Bucket="clinops-dev-capture")
    local = tmp_path / "capture"
    live = NOW - dt.timedelta(hours=2)  # endpoint LastModifiedTime: when the shadow config went live
    rows = {f"r{i}": s for i, s in enumerate(scores(50))}
    write_capture(local, "dev", names.VARIANT, rows, live + dt.timedelta(hours=1))
    write_capture(local, "dev", names.SHADOW_VARIANT, rows, live + dt.timedelta(hours=1))
    write_capture(local, "dev", names.SHADOW_VARIANT, dict.fromkeys(rows, 0.99), live - dt.timedelta(hours=5))
    for path in local.rglob("*.jsonl"):
        s3.upload_file(str(path), "clinops-dev-capture", f"{MODEL}/{path.relative_to(local).as_posix()}")
    described = endpoint_description("dev", names.config_name("dev", MODEL, production), shadow_weight=0.5)
    clients = _stubs(registry, production, candidate, endpoint=described)
    report = run_report(
        stack_aws(session, **clients),
        config,
        find_model(config, MODEL),
        criteria=CRITERIA,
        shadow_arn=candidate,
        now=NOW,
    )
    assert report.capture_source == "s3://clinops-dev-capture/readmission-risk/clinops-dev-readmission-risk/"
    assert report.inputs.since == live
    assert report.comparison.counts["shadow_rows"] == 50  # the stale hour was skipped
    assert report.exit_code == ExitCode.SHADOW_INCONCLUSIVE  # 50 pairs < 200
    assert report.comparison.reasons == ["only 50 matched requests with valid scores (needs 200)"]


def test_missing_operating_threshold_needs_an_explicit_one(session, project, registry, tmp_path) -> None:
    metadata = {k: v for k, v in GOOD_METRICS.items() if k != "operating_threshold"}
    _, production, _, candidate = registry.approved(versions=4, metadata=metadata)
    config = load_from_stack_file("prod", project)
    sagemaker, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(production))
    with pytest.raises(UnusableInput, match="records no operating_threshold"):
        run_report(
            stack_aws(session, sagemaker=sagemaker),
            config,
            find_model(config, MODEL),
            criteria=CRITERIA,
            capture=str(tmp_path),
            shadow_arn=candidate,
            since=NOW,
            now=NOW,
        )


def test_capture_of_another_endpoint_is_refused_not_reported_empty(session, project, registry, tmp_path) -> None:
    _, production, _, candidate = registry.approved(versions=4)
    config = load_from_stack_file("prod", project)
    write_capture(tmp_path / "capture", "staging", names.VARIANT, {"r1": 0.2}, NOW)  # staging's, not prod's
    sagemaker, stub = stubbed("sagemaker")
    for arn in (production, candidate):
        stub.add_response("describe_model_package", registry.describe(arn))
    with pytest.raises(UnusableInput, match="no capture of clinops-prod-readmission-risk"):
        run_report(
            stack_aws(session, sagemaker=sagemaker),
            config,
            find_model(config, MODEL),
            criteria=CRITERIA,
            capture=str(tmp_path / "capture"),
            shadow_arn=candidate,
            since=NOW,
            now=NOW,
        )


def test_the_canarys_synthetic_requests_are_never_paired(session, project, registry, tmp_path) -> None:
    """The canary's requests reach both variants with one InferenceId; paired, these would fail agreement."""
    from clinops.traffic import synthetic_inference_id

    _, production, _, candidate = registry.approved(versions=4)
    config = load_from_stack_file("prod", project)
    capture, when = tmp_path / "capture", NOW - dt.timedelta(hours=1)
    p = scores(260)
    canary = [synthetic_inference_id() for _ in range(150)]
    write_capture(capture, "prod", names.VARIANT, {f"req-{i}": s for i, s in enumerate(p[:240])}, when)
    write_capture(capture, "prod", names.SHADOW_VARIANT, {f"req-{i}": s + 0.004 for i, s in enumerate(p[:240])}, when)
    write_capture(capture, "prod", names.VARIANT, dict.fromkeys(canary, 0.99), when)
    write_capture(capture, "prod", names.SHADOW_VARIANT, dict.fromkeys(canary, 0.01), when)
    aws = stack_aws(session, **_stubs(registry, production, candidate))
    report = run_report(
        aws,
        config,
        find_model(config, MODEL),
        criteria=CRITERIA,
        capture=str(capture),
        shadow_arn=candidate,
        since=NOW - dt.timedelta(hours=3),
        now=NOW,
    )
    assert report.exit_code == ExitCode.OK, report.comparison.reasons
    counts = report.comparison.counts
    assert (counts["matched_valid"], counts["shadow_rows"]) == (240, 240)
