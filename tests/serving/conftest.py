"""A moto account with one clinical model's endpoint, its configurations and SSM records, plus the calls moto
lacks (UpdateEndpoint; a DescribeEndpoint that is mid-deployment) through botocore Stubbers, which validate every
request against the real SageMaker service model."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from clinops.evidence import EvidenceLog
from clinops.names import (
    BREAKER_ALARM_SUFFIXES,
    ROLLBACK_ALARM_SUFFIXES,
    config_name,
    endpoint_name,
    last_known_good_parameter,
    pinned_parameter,
)
from serving.guardrails.breaker import BreakerSettings, Clients
from serving.guardrails.verified import mark_verified
from tests.conftest import REPO

STACK, MODEL, OTHER_MODEL = "prod", "readmission-risk", "sepsis-warning"
ACCOUNT, REGION = "111111111111", "us-east-1"
ENDPOINT = endpoint_name(STACK, MODEL)
BREAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/clinops-prod-circuit-breaker"
VERIFIER = f"arn:aws:sts::{ACCOUNT}:assumed-role/clinops-prod-deployer/ci"
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def package(version: int, model: str = MODEL) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{model}/{version}"


def config(version: int) -> str:
    return config_name(STACK, MODEL, package(version))


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += timedelta(seconds=seconds)


def alarm_event(
    event_id: str,
    alarm: str = f"{ENDPOINT}-drift",
    *,
    state: str = "ALARM",
    at: datetime = T0,
    reason: str = "Threshold Crossed: 3 out of the last 3 datapoints [1.0] were greater than the threshold (0.0).",
) -> dict[str, Any]:
    """The documented "CloudWatch Alarm State Change" shape (CloudWatch user guide, alarm events)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"],
        "detail": {
            "alarmName": alarm,
            "state": {"value": state, "reason": reason, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")},
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-02-28T00:00:00.000+0000"},
            "configuration": {"description": "drift verdict", "metrics": []},
        },
    }


class CallLog:
    """Every AWS operation a client sends, by name (botocore's before-parameter-build event)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        self.params: dict[str, dict[str, Any]] = {}
        self.sequence: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.*.*", self._seen)
        self.client = client

    def _seen(self, model: Any, params: Any, **_: Any) -> None:
        self.names.append(model.name)
        self.params[model.name] = dict(params)
        self.sequence.append((model.name, dict(params)))

    def close(self) -> None:
        self.client.meta.events.unregister("before-parameter-build.*.*", self._seen)


class SageMakerDouble:
    """moto for everything moto does; UpdateEndpoint and queued DescribeEndpoint answers through Stubbers.

    A stubbed UpdateEndpoint takes effect like a finished deployment: the moto endpoint is re-created on the
    requested configuration, so later reads see what SageMaker would show once the rollback is done."""

    def __init__(self, moto: Any, world: World, update_client: Any, describe_client: Any) -> None:
        self.moto, self.world = moto, world
        self.update_client, self.describe_client = update_client, describe_client
        self.updates, self.describes = Stubber(update_client), Stubber(describe_client)
        self.updates.activate()
        self.describes.activate()
        self.queued_describes = 0
        self.update_calls: list[dict[str, Any]] = []
        self.plans: list[tuple[bool, bool, Exception | None]] = []  # per UpdateEndpoint: (sent, lands, error)
        self.lock = threading.Lock()

    def expect_update(self, params: dict[str, Any], *, lands: bool = True, then_raise: Exception | None = None) -> None:
        """SageMaker accepts this UpdateEndpoint; `lands=False`: the deployment has not finished (queue the
        DescribeEndpoint answers the test needs); `then_raise`: the answer is lost on the way back (a timeout)."""
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{params['EndpointName']}"
        self.updates.add_response("update_endpoint", {"EndpointArn": arn}, expected_params=params)
        self.plans.append((True, lands, then_raise))

    def lose_update(self, error: Exception) -> None:
        """The UpdateEndpoint request never reaches SageMaker (connection error): nothing changes."""
        self.plans.append((False, False, error))

    def fail_update(self, code: str, message: str) -> None:
        self.updates.add_client_error("update_endpoint", service_error_code=code, service_message=message)
        self.plans.append((True, False, None))

    def queue_describe(self, status: str, version: int) -> None:
        self.queued_describes += 1
        self.describes.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
                "EndpointConfigName": config(version),
                "EndpointStatus": status,
                "CreationTime": T0,
                "LastModifiedTime": T0,
            },
            expected_params={"EndpointName": ENDPOINT},
        )

    def update_endpoint(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            self.update_calls.append(params)
            sent, lands, error = self.plans.pop(0) if self.plans else (True, True, None)
            if not sent and error is not None:
                raise error
            answer = self.update_client.update_endpoint(**params)
            if lands:
                self.world.serve(params["EndpointConfigName"])
            if error is not None:
                raise error
        return answer

    def describe_endpoint(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            if self.queued_describes:
                self.queued_describes -= 1
                return self.describe_client.describe_endpoint(**params)
        return self.moto.describe_endpoint(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)

    def close(self) -> None:
        self.updates.deactivate()
        self.describes.deactivate()


SERVICES = ("sagemaker", "ssm", "sns", "sqs", "cloudwatch", "events", "sts")


def make_client(service: str) -> Any:
    """Explicit dummy credentials: nothing here may ever reach a real account."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


class World:
    def __init__(self, tmp: Path, clock: FakeClock, pool: dict[str, Any]) -> None:
        self.clock, self.pool = clock, pool
        self.moto_sagemaker = pool["sagemaker"]
        self.admin = pool["sagemaker-admin"]  # the tests' own setup calls, kept apart from the code's
        self.sagemaker = SageMakerDouble(
            self.moto_sagemaker, self, pool["sagemaker-update"], pool["sagemaker-describe"]
        )
        self.ssm, self.sns, self.sqs, self.cloudwatch = pool["ssm"], pool["sns"], pool["sqs"], pool["cloudwatch"]
        key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b4a8f3e-1111-4222-8333-444455556666"  # the alerts topic's CMK
        self.topic_arn = self.sns.create_topic(Name="clinops-prod-alerts", Attributes={"KmsMasterKeyId": key})[
            "TopicArn"
        ]
        self.queue = self.sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )
        self.evidence = EvidenceLog.local(tmp / "evidence", STACK)
        self.settings = BreakerSettings(
            stack=STACK, models=(MODEL, OTHER_MODEL), topic_arn=self.topic_arn, actor=BREAKER_ROLE
        )
        self._alerts: list[dict[str, Any]] = []

    def clients(self) -> Clients:
        return Clients(self.sagemaker, self.ssm, self.sns, self.evidence, self.cloudwatch)

    def set_alarm(self, signal: str, value: str = "ALARM", model: str = MODEL) -> str:
        """The model's alarm for `signal` (created if missing) put into `value`, as CloudWatch would show it."""
        name = f"{endpoint_name(STACK, model)}-{signal}"
        if not self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
            self.cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="clinops",
                MetricName=signal,
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0.0,
                ComparisonOperator="GreaterThanThreshold",
            )
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=value, StateReason=f"test: {signal} {value}")
        return name

    def add_config(self, version: int) -> None:
        name = config(version)
        self.admin.create_model(
            ModelName=name,
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/clinops-prod-sagemaker-execution",
            PrimaryContainer={"ModelPackageName": package(version)},
        )
        self.admin.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": 2,
                    "InstanceType": "ml.m5.large",
                }
            ],
            Tags=[{"Key": "clinops:package", "Value": package(version)}],
        )

    def serve(self, endpoint_config: str) -> None:
        """The endpoint as SageMaker shows it once a deployment to `endpoint_config` has finished."""
        with contextlib.suppress(self.admin.exceptions.ClientError):
            self.admin.delete_endpoint(EndpointName=ENDPOINT)
        self.admin.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=endpoint_config)

    def record(self, pinned: int, last_known_good: int | None) -> None:
        self.ssm.put_parameter(Name=pinned_parameter(STACK, MODEL), Value=config(pinned), Type="String", Overwrite=True)
        self.ssm.put_parameter(
            Name=last_known_good_parameter(STACK, MODEL),
            Value=config(last_known_good) if last_known_good else "none",
            Type="String",
            Overwrite=True,
        )

    def verify(self, version: int) -> None:
        mark_verified(
            self.ssm,
            self.moto_sagemaker,
            stack=STACK,
            model=MODEL,
            endpoint_config=config(version),
            package_arn=package(version),
            evidence_anchor="7:" + "a" * 64,
            actor=VERIFIER,
            clock=self.clock,
        )

    def alerts(self) -> list[dict[str, Any]]:
        """Every message published to the alert topic so far (delivered to an SQS subscriber by moto)."""
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return self._alerts
            for message in batch:
                self._alerts.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])

    def entries(self, kind: str = "rollback") -> list[Any]:
        return [e for e in self.evidence.entries() if str(e.kind) == kind]


@pytest.fixture(scope="session")
def pool() -> dict[str, Any]:
    """Clients are built once (each costs ~0.2 s); moto intercepts clients made before its mock starts, and
    every test's `mock_aws` starts from an empty account."""
    import moto  # noqa: F401 - registers its request interceptor before the clients are built

    clients = {service: make_client(service) for service in SERVICES}
    clients["sagemaker-update"] = make_client("sagemaker")
    clients["sagemaker-describe"] = make_client("sagemaker")
    clients["sagemaker-admin"] = make_client("sagemaker")
    return clients


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(seconds=30))


@pytest.fixture
def world(aws: None, tmp_path: Path, clock: FakeClock, pool: dict[str, Any]) -> Iterator[World]:
    """Serving verified v4 (pinned); v3 is the verified last-known-good."""
    w = World(tmp_path, clock, pool)
    for version in (3, 4):
        w.add_config(version)
        w.verify(version)
    w.serve(config(4))
    w.record(pinned=4, last_known_good=3)
    for signal in (*ROLLBACK_ALARM_SUFFIXES, *BREAKER_ALARM_SUFFIXES):  # as if each had fired: tests clear them
        w.set_alarm(signal)
    yield w
    w.sagemaker.close()


def stack_root(tmp: Path, *, pinned: int = 4, last_known_good: int | None = 3) -> Path:
    """A project root holding a copy of the repository's prod stack file, pinning v`pinned` (and the LKG)."""
    root = tmp / "project"
    root.mkdir(exist_ok=True)
    text = (REPO / "Pulumi.prod.yaml").read_text()
    text = text.replace(f"model-package/{MODEL}/2", f"model-package/{MODEL}/{pinned}")
    lkg_line = f"      lastKnownGoodPackageArn: {package(1)}\n"
    assert lkg_line in text, "the prod stack file changed shape; update this helper"
    text = text.replace(
        lkg_line, f"      lastKnownGoodPackageArn: {package(last_known_good)}\n" if last_known_good else ""
    )
    (root / "Pulumi.prod.yaml").write_text(text)
    return root
