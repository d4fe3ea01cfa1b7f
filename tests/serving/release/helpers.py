"""Builders shared by the release tests: stack files, registry packages, identities, endpoint descriptions."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from clinops import names
from clinops.config import project_root
from serving.release.aws import RetryPolicy, StackAws
from serving.release.evidence import EvidenceLocation, record

REGION = "us-east-1"
DEV_ACCOUNT = "123456789012"  # moto's default account: the build account with the registry
STAGING_ACCOUNT, PROD_ACCOUNT = "222222222222", "333333333333"
MODEL = "readmission-risk"
ACTOR = "arn:aws:sts::123456789012:assumed-role/ci-release/pipeline-42"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
GOOD_METRICS = {"auc": "0.81", "brier": "0.12", "max_subgroup_auc_gap": "0.04", "operating_threshold": "0.3"}


# Loading service models costs about a second per session on a busy machine: share one. Credentials come from
# the (fixed) test environment and clients are created per test, so sharing leaks nothing between tests.
_SESSION: list[boto3.Session] = []


def boto_session() -> boto3.Session:
    if not _SESSION:
        _SESSION.append(boto3.Session(region_name=REGION))
    return _SESSION[0]


def package_arn(version: int, model: str = MODEL) -> str:
    return f"arn:aws:sagemaker:{REGION}:{DEV_ACCOUNT}:model-package/{model}/{version}"


def make_project(root: Path) -> Path:
    """The repository's stack files with the build account moved to moto's default account."""
    root.mkdir(parents=True)
    shutil.copy(project_root() / "Pulumi.yaml", root / "Pulumi.yaml")
    for path in project_root().glob("Pulumi.*.yaml"):
        (root / path.name).write_text(path.read_text().replace("111111111111", DEV_ACCOUNT))
    return root


def role_session(role: str, session: str, source: str | None = None, account: str = DEV_ACCOUNT) -> dict[str, Any]:
    arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    iam: dict[str, Any] = {"Arn": arn, "PrincipalId": f"AROA:{session}"}
    if source:
        iam["SourceIdentity"] = source
    return {"IamIdentity": iam}


AUTHOR = role_session("data-science", "alice", "alice@hospital.example")
APPROVER = role_session("clinical-governance", "bob", "bob@hospital.example")


class Registry:
    """Packages in moto's registry (status, metadata, approval); identities are layered on with a Stubber,
    since moto records the same fake Studio profile as author and approver."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.client.create_model_package_group(ModelPackageGroupName=MODEL)

    def register(self, metadata: dict[str, str] | None = None) -> str:
        spec = {
            "Containers": [{"Image": f"{DEV_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/clinops:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        }
        answer = self.client.create_model_package(
            ModelPackageGroupName=MODEL,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=spec,
            CustomerMetadataProperties=GOOD_METRICS if metadata is None else metadata,
        )
        return answer["ModelPackageArn"]

    def set_status(self, arn: str, status: str, note: str = "clinical review CR-1042") -> str:
        # moto (unlike SageMaker) drops CustomerMetadataProperties on an update that omits them: pass them back.
        kept = self.client.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties")
        extra = {"CustomerMetadataProperties": kept} if kept else {}
        self.client.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=note, **extra
        )
        return arn

    def approved(self, versions: int = 1, metadata: dict[str, str] | None = None) -> list[str]:
        return [self.set_status(self.register(metadata), "Approved") for _ in range(versions)]

    def describe(self, arn: str, author: dict | None = AUTHOR, approver: dict | None = APPROVER) -> dict[str, Any]:
        answer = self.client.describe_model_package(ModelPackageName=arn)
        answer.pop("ResponseMetadata", None)
        answer.setdefault("ModelPackageName", MODEL)  # SageMaker returns it (the group) for versioned packages
        for key, identity in (("CreatedBy", author), ("LastModifiedBy", approver)):
            if identity is None:
                answer.pop(key, None)
            else:
                answer[key] = identity
        return answer


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A real botocore client whose calls are answered (and validated against the service model) by Stubber."""
    client = boto_session().client(service, region_name=REGION)
    stub = Stubber(client)
    stub.activate()
    return client, stub


def stack_aws(session: Any, sleeps: list[float] | None = None, **clients: Any) -> StackAws:
    sleep = (sleeps if sleeps is not None else []).append
    retry = RetryPolicy(attempts=4, base_seconds=0.5, cap_seconds=4.0, sleep=sleep)
    return StackAws(session, REGION, retry=retry, clients=clients)


def not_found_endpoint(stub: Stubber, name: str) -> None:
    stub.add_client_error(
        "describe_endpoint",
        "ValidationException",
        f"Could not find endpoint '{name}'.",
        expected_params={"EndpointName": name},
    )


def endpoint_description(
    stack: str,
    config: str,
    *,
    status: str = "InService",
    capture: bool = True,
    capture_percent: int = 100,
    instances: int = 1,
    shadow_weight: float | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    endpoint = names.endpoint_name(stack, model)
    description: dict[str, Any] = {
        "EndpointName": endpoint,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{DEV_ACCOUNT}:endpoint/{endpoint}",
        "EndpointConfigName": config,
        "ProductionVariants": [
            {
                "VariantName": names.VARIANT,
                "CurrentWeight": 1.0,
                "DesiredWeight": 1.0,
                "CurrentInstanceCount": instances,
                "DesiredInstanceCount": instances,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": capture,
            "CaptureStatus": "Started" if capture else "Stopped",
            "CurrentSamplingPercentage": capture_percent,
            "DestinationS3Uri": f"s3://clinops-{stack}-capture/{model}/",
            "KmsKeyId": f"arn:aws:kms:{REGION}:{DEV_ACCOUNT}:key/capture",
        },
        "EndpointStatus": status,
        "CreationTime": NOW - dt.timedelta(days=3),
        "LastModifiedTime": NOW - dt.timedelta(hours=2),
        "LastDeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 300,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                }
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in names.alarm_names(stack, model)]},
        },
    }
    if shadow_weight is not None:
        description["ShadowProductionVariants"] = [
            {
                "VariantName": names.SHADOW_VARIANT,
                "CurrentWeight": shadow_weight,
                "DesiredWeight": shadow_weight,
                "CurrentInstanceCount": 1,
                "DesiredInstanceCount": 1,
            }
        ]
    return description


def endpoint_config_description(stack: str, config: str, package: str, shadow: str | None = None) -> dict[str, Any]:
    def variant(name: str, arn: str) -> dict[str, Any]:
        return {
            "VariantName": name,
            "ModelName": names.model_name(stack, MODEL, arn),
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 1.0,
        }

    answer: dict[str, Any] = {
        "EndpointConfigName": config,
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{DEV_ACCOUNT}:endpoint-config/{config}",
        "ProductionVariants": [variant(names.VARIANT, package)],
        "CreationTime": NOW - dt.timedelta(days=1),
    }
    if shadow:
        answer["ShadowProductionVariants"] = [variant(names.SHADOW_VARIANT, shadow)]
    return answer


def seed_evidence(
    location: EvidenceLocation, stack: str, kind: str, check: str, package: str, passed: bool, **details: Any
) -> None:
    record(
        location.log(stack),
        kind,
        check,
        model=MODEL,
        package_arn=package,
        actor=ACTOR,
        reason="test fixture",
        details={"passed": passed, **details},
    )


def deploy_alarms_and_pins(session: Any, stack: str, pinned: str, last_known_good: str = "none") -> None:
    """What `pulumi up` leaves behind that verify reads from moto: the SSM pins and the three alarms (OK)."""
    ssm, cloudwatch = session.client("ssm"), session.client("cloudwatch")
    ssm.put_parameter(Name=names.parameter_name(stack, MODEL, names.PINNED_PARAMETER), Value=pinned, Type="String")
    ssm.put_parameter(
        Name=names.parameter_name(stack, MODEL, names.LAST_KNOWN_GOOD_PARAMETER), Value=last_known_good, Type="String"
    )
    for alarm in names.alarm_names(stack, MODEL):
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            MetricName="Invocation5XXErrors",
            Namespace="AWS/SageMaker",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=3,
            DatapointsToAlarm=2,
            Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
            ActionsEnabled=True,
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test: healthy")
