"""The cloud side of the service's reads and writes, against moto and botocore Stubbers (which validate each
request against the real service models): breaker record and pin in SSM, alarms in CloudWatch,
InvokeEndpoint, the override-rate metric."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from clinops.names import CDS_METRIC_NAMESPACE, SHADOW_VARIANT, alarm_name, pinned_parameter
from serving.cds.feedback import (
    FeedbackItem,
    FeedbackRecorder,
    IssuedCard,
    IssuedCards,
    KmsEncounterHasher,
    S3IssuanceStore,
)
from serving.cds.guardrails import ALARM, CIRCUIT_OPEN, ROLLED_BACK, AwsGuardrails, GuardrailView
from serving.cds.scoring import SageMakerScorer, ScoringError
from serving.guardrails.state import LANDED, REQUESTED, BreakerState, SsmStateStore

STACK, MODEL = "prod", "readmission-risk"
V3, V2 = "clinops-prod-readmission-risk-v3", "clinops-prod-readmission-risk-v2"


def record(phase: str) -> BreakerState:
    return BreakerState(
        outcome="x", last_event_id="e", alarm=alarm_name(STACK, MODEL, "5xx-rate"), alarm_at="2026-12-06T10:00:00Z",
        decided_at="2026-12-06T10:00:01Z", reason="r", phase=phase, from_config=V3, to_config=V2,
    )  # fmt: skip


@pytest.fixture
def aws():
    with mock_aws():
        ssm, cw = boto3.client("ssm", "us-east-1"), boto3.client("cloudwatch", "us-east-1")
        ssm.put_parameter(Name=pinned_parameter(STACK, MODEL), Value=V3, Type="String")
        for signal in ("drift", "quality", "override-rate"):
            cw.put_metric_alarm(
                AlarmName=alarm_name(STACK, MODEL, signal), MetricName="m", Namespace="n", Statistic="Average",
                Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
            )  # fmt: skip
        yield ssm, cw


def test_the_breakers_ssm_record_and_the_pin_decide_the_hold(aws) -> None:
    ssm, cw = aws
    view = GuardrailView(AwsGuardrails(STACK, ssm, cw), ttl_seconds=0)
    assert view.hold(MODEL) is None  # no record, no alarm
    store = SsmStateStore(ssm)
    store.commit(STACK, MODEL, store.read(STACK, MODEL), record(REQUESTED))
    assert view.hold(MODEL).kind == CIRCUIT_OPEN
    store.commit(STACK, MODEL, store.read(STACK, MODEL), record(LANDED))
    hold = view.hold(MODEL)
    assert hold.kind == ROLLED_BACK and hold.answering_version == 2
    ssm.put_parameter(
        Name=pinned_parameter(STACK, MODEL), Value="clinops-prod-readmission-risk-v4", Type="String", Overwrite=True
    )
    assert view.hold(MODEL) is None  # a release since the rollback


def test_an_alarm_in_force_is_read_from_cloudwatch(aws) -> None:
    ssm, cw = aws
    view = GuardrailView(AwsGuardrails(STACK, ssm, cw), ttl_seconds=0)
    cw.set_alarm_state(AlarmName=alarm_name(STACK, MODEL, "override-rate"), StateValue="ALARM", StateReason="t")
    hold = view.hold(MODEL)
    assert hold.kind == ALARM and alarm_name(STACK, MODEL, "override-rate") in hold.reason


def test_reads_are_cached_per_model_for_the_ttl(aws) -> None:
    ssm, cw = aws
    now = [0.0]
    view = GuardrailView(AwsGuardrails(STACK, ssm, cw), ttl_seconds=10, clock=lambda: now[0])
    assert view.hold(MODEL) is None
    cw.set_alarm_state(AlarmName=alarm_name(STACK, MODEL, "drift"), StateValue="ALARM", StateReason="t")
    now[0] = 5.0
    assert view.hold(MODEL) is None
    now[0] = 11.0
    assert view.hold(MODEL).kind == ALARM


def _invoke_answer(body: dict, variant: str = "AllTraffic") -> dict:
    raw = json.dumps(body).encode()
    return {
        "Body": StreamingBody(io.BytesIO(raw), len(raw)),
        "ContentType": "application/json",
        "InvokedProductionVariant": variant,
    }


def test_invoke_endpoint_answers_and_shadow_or_errors_are_refused() -> None:
    runtime = boto3.client("sagemaker-runtime", "us-east-1")
    scorer = SageMakerScorer(runtime, "clinops-prod-readmission-risk")
    good = {"model": MODEL, "model_version": "3", "scores": [0.2], "threshold": 0.3, "flags": [False]}
    with Stubber(runtime) as stub:
        expected = {"EndpointName": "clinops-prod-readmission-risk", "ContentType": "application/json",
                    "Accept": "application/json", "Body": json.dumps({"age": 70}).encode()}  # fmt: skip
        stub.add_response("invoke_endpoint", _invoke_answer(good), expected)
        stub.add_response("invoke_endpoint", _invoke_answer(good, SHADOW_VARIANT), expected)
        stub.add_client_error("invoke_endpoint", "ModelError", http_status_code=424)
        assert scorer.score({"age": 70}, 0.5).probability == 0.2
        with pytest.raises(ScoringError, match="shadow variant"):
            scorer.score({"age": 70}, 0.5)
        with pytest.raises(ScoringError, match="InvokeEndpoint failed \\(ModelError\\)"):
            scorer.score({"age": 70}, 0.5)


def test_the_override_metric_is_a_valid_put_metric_data_call() -> None:
    cw = boto3.client("cloudwatch", "us-east-1")
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    recorder = FeedbackRecorder(STACK, None, cw, clock=lambda: at)
    issued = IssuedCards()
    card_id = "0b7f6f3e-3d0c-4a59-9b0f-1f2d3c4b5a69"
    issued.add(MODEL, card_id, IssuedCard(MODEL, "3", "risk", "high", "h" * 32))
    with Stubber(cw) as stub:
        stub.add_response("put_metric_data", {}, {"Namespace": CDS_METRIC_NAMESPACE, "MetricData": [
            {"MetricName": "CardOverridden",
             "Dimensions": [{"Name": "Stack", "Value": STACK}, {"Name": "Model", "Value": MODEL}],
             "Timestamp": at, "Value": 1.0, "Unit": "None"}]})  # fmt: skip
        recorder.record(
            MODEL, "cds-hooks:https://ehr", [FeedbackItem(card_id, "overridden", "disagree-risk", False, 0)], issued
        )
        stub.assert_no_pending_responses()


def test_kms_hashes_encounters_deterministically_and_asks_once_per_encounter() -> None:
    with mock_aws():
        kms = boto3.client("kms", "us-east-1")
        key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        other = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        hasher = KmsEncounterHasher(key, kms)
        first = hasher.hash("enc-000123")
        assert first == KmsEncounterHasher(key, kms).hash("enc-000123") and len(first) == 32
        assert first != hasher.hash("enc-000124") and first != KmsEncounterHasher(other, kms).hash("enc-000123")
        assert "enc-000123" not in repr(hasher._cache)
    with Stubber(kms) as stub:  # cached: no second GenerateMac for the same encounter
        assert hasher.hash("enc-000123") == first
        stub.assert_no_pending_responses()
    with pytest.raises(ValueError, match="ENCOUNTER_MAC_KEY_ID"):
        KmsEncounterHasher("", kms)


def test_issuance_records_round_trip_through_s3_without_phi() -> None:
    with mock_aws():
        s3 = boto3.client("s3", "us-east-1")
        s3.create_bucket(Bucket="evidence")
        store = S3IssuanceStore("evidence", STACK, "alias/audit", s3)
        card_id = "0b7f6f3e-3d0c-4a59-9b0f-1f2d3c4b5a69"
        record = IssuedCard(MODEL, "3", "risk", "high", "a" * 32, "2026-12-06T12:00:00+00:00")
        store.put(MODEL, card_id, record)
        assert store.get(MODEL, card_id) == record
        assert store.get(MODEL, "1b7f6f3e-3d0c-4a59-9b0f-1f2d3c4b5a69") is None
        assert IssuedCards(store).get(MODEL, card_id.upper()) == record  # any spelling of the uuid
        assert IssuedCards(store).get("sepsis-warning", card_id) is None  # another model's prefix
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="evidence")["Contents"]]
        assert keys == [f"cds-issued/{STACK}/{MODEL}/{card_id}.json"]
