"""The fake AWS account the release rehearsal runs in: moto (in process, no network) for everything moto does,
and botocore Stubbers - which validate every request and answer against the real service model - for what moto
lacks or shows differently from SageMaker (offline-facts.md):

- UpdateEndpoint: not in moto. The stubbed call is validated, then the world applies it the way a finished
  deployment shows: the endpoint serves the new configuration, after one DescribeEndpoint that says Updating
  (so the breaker records `updating` first and its schedule records `landed`, as in the cloud);
- DescribeEndpoint: moto's answer (existence, configuration, status) completed with what SageMaker shows after
  `pulumi up` and moto omits: variant weights and counts, the data-capture summary, the deployment config with
  its auto-rollback alarms;
- DescribeModelPackage: moto records one fake identity as both author and approver; SageMaker records who
  registered (CreatedBy) and who approved (LastModifiedBy), so the world overlays the identities that acted.

`pulumi up` is played by `deploy`: it leaves behind what the real program does and what verify and the breaker
read - models and endpoint configurations of the pinned and last-known-good packages, the endpoint, the SSM
pins, the rollback and breaker alarms. Nothing here is used outside the rehearsal.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.stub import Stubber

from clinops import names
from clinops.config import StackConfig
from clinops.models import ModelConfig

FAKE_KEY = "rehearsal"  # the only credentials the rehearsal ever holds: moto accepts anything
BUILD_IMAGE_TAG = "rehearsal"
BUNDLE_FILES = ("model.joblib", "metadata.json", "contract.yaml", "baseline.json")  # what SageMaker serves


def role_session(account: str, role: str, session: str, source_identity: str) -> dict[str, Any]:
    """A SageMaker `UserContext` for an assumed-role session with a source identity (a person)."""
    arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    return {
        "IamIdentity": {
            "Arn": arn,
            "PrincipalId": f"AROA{session.upper()}:{session}",
            "SourceIdentity": source_identity,
        }
    }


def bundle_archive(model_dir: Path) -> bytes:
    """model.tar.gz as the training pipeline hands it to SageMaker: the bundle's files at the archive root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in BUNDLE_FILES:
            path = model_dir / name
            if path.is_file():
                tar.add(path, arcname=name)
    return buffer.getvalue()


@dataclass
class EndpointView:
    """What SageMaker shows of an endpoint beyond moto: the deployment config and queued transient statuses."""

    deployment: dict[str, Any]
    statuses: list[str] = field(default_factory=list)  # answered once each, before moto's InService


class SageMakerDouble:
    """moto's SageMaker client, with UpdateEndpoint, DescribeEndpoint and DescribeModelPackage completed through a
    Stubber-validated client (see the module doc)."""

    def __init__(self, world: RehearsalWorld) -> None:
        self.world = world
        self.moto = world.client("sagemaker")
        self.checked = world.client("sagemaker")
        self.stub = Stubber(self.checked)
        self.stub.activate()
        self.update_calls: list[dict[str, Any]] = []

    def _validated(self, operation: str, answer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        answer = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
        self.stub.add_response(operation, answer, expected_params=params)
        return getattr(self.checked, operation)(**params)

    def describe_model_package(self, **params: Any) -> dict[str, Any]:
        answer = self.moto.describe_model_package(**params)
        author, approver = self.world.identities.get(answer["ModelPackageArn"], (None, None))
        answer.setdefault("ModelPackageName", answer.get("ModelPackageGroupName"))  # SageMaker names the group
        answer.pop("CreatedBy", None)
        answer.pop("LastModifiedBy", None)
        if author:
            answer["CreatedBy"] = author
        if approver:
            answer["LastModifiedBy"] = approver
        return self._validated("describe_model_package", answer, params)

    def describe_endpoint(self, **params: Any) -> dict[str, Any]:
        answer = self.moto.describe_endpoint(**params)  # raises moto's "Could not find endpoint" when absent
        view = self.world.views.get(answer["EndpointName"])
        if view is None:
            return self._validated("describe_endpoint", answer, params)
        if view.statuses:
            answer["EndpointStatus"] = view.statuses.pop(0)
        config = self.moto.describe_endpoint_config(EndpointConfigName=answer["EndpointConfigName"])
        answer["ProductionVariants"] = [
            {
                "VariantName": v["VariantName"],
                "CurrentWeight": float(v.get("InitialVariantWeight", 1.0)),
                "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": int(v["InitialInstanceCount"]),
                "DesiredInstanceCount": int(v["InitialInstanceCount"]),
            }
            for v in config["ProductionVariants"]
        ]
        capture = config.get("DataCaptureConfig")
        if capture:
            answer["DataCaptureConfig"] = {
                "EnableCapture": bool(capture.get("EnableCapture", True)),
                "CaptureStatus": "Started",
                "CurrentSamplingPercentage": int(capture["InitialSamplingPercentage"]),
                "DestinationS3Uri": capture["DestinationS3Uri"],
                "KmsKeyId": capture.get("KmsKeyId", ""),
            }
        answer["LastDeploymentConfig"] = view.deployment
        return self._validated("describe_endpoint", answer, params)

    def update_endpoint(self, **params: Any) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = f"arn:aws:sagemaker:{self.world.region}:{self.world.account}:endpoint/{name}"
        answer = self._validated("update_endpoint", {"EndpointArn": arn}, params)
        self.update_calls.append(params)
        # Accepted: SageMaker deploys. The next DescribeEndpoint says Updating, later ones the new configuration.
        self.world.serve(name, params["EndpointConfigName"], params.get("DeploymentConfig") or {}, ["Updating"])
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)

    def close(self) -> None:
        self.stub.deactivate()


class RehearsalWorld:
    """One fake account and region, inside an active moto mock."""

    def __init__(self, account: str, region: str) -> None:
        import boto3

        self.account, self.region = account, region
        self.session = boto3.Session(aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_KEY, region_name=region)
        self.identities: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
        self.views: dict[str, EndpointView] = {}
        self.sagemaker = SageMakerDouble(self)
        self.ssm, self.cloudwatch, self.sns = self.client("ssm"), self.client("cloudwatch"), self.client("sns")
        self.s3, self.kms, self.sqs = self.client("s3"), self.client("kms"), self.client("sqs")
        self.topic_arn = ""
        self.alert_queue = ""

    def client(self, service: str) -> Any:
        return self.session.client(service)

    # -- the account as the platform's stacks leave it -------------------------------------------------------

    def provision(self, config: StackConfig) -> None:
        """The stack's foundations the release path reads: the artifacts key and bucket, the capture bucket, the
        alert topic (with a queue subscribed, so the rehearsal can count alerts), the registry's groups."""
        key = self.kms.create_key(Description=f"clinops {config.stack} artifacts")["KeyMetadata"]["Arn"]
        self.kms.create_alias(AliasName=f"alias/clinops-{config.stack}-artifacts", TargetKeyId=key)
        self.capture_key = self.kms.create_key(Description=f"clinops {config.stack} capture")["KeyMetadata"]["Arn"]
        for bucket in (self.artifacts_bucket(config), self.build_bucket(), self.capture_bucket(config)):
            self.s3.create_bucket(Bucket=bucket)
        self.topic_arn = self.sns.create_topic(Name=f"clinops-{config.stack}-alerts")["TopicArn"]
        self.alert_queue = self.sqs.create_queue(QueueName=f"clinops-{config.stack}-alerts-reader")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.alert_queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )
        for model in config.models:
            self.sagemaker.create_model_package_group(ModelPackageGroupName=model.name)

    def artifacts_bucket(self, config: StackConfig) -> str:
        from serving.release.baseline import baseline_location

        return baseline_location(config, config.models[0].name)[0]

    def build_bucket(self) -> str:
        return f"clinops-rehearsal-{self.account}-build"

    def capture_bucket(self, config: StackConfig) -> str:
        return f"clinops-{config.stack}-{self.account}-data-capture"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert published to the stack's topic (delivered to the reader queue by moto)."""
        seen: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.alert_queue, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.alert_queue, ReceiptHandle=message["ReceiptHandle"])
        return seen

    # -- the registry ------------------------------------------------------------------------------------------

    def register(self, model: str, archive: bytes, metadata: dict[str, str], author: dict[str, Any] | None) -> str:
        """The training pipeline's RegisterModel step: model.tar.gz to S3, a PendingManualApproval package."""
        versions = self.sagemaker.list_model_packages(ModelPackageGroupName=model)["ModelPackageSummaryList"]
        key = f"{model}/v{len(versions) + 1}/model.tar.gz"
        self.s3.put_object(Bucket=self.build_bucket(), Key=key, Body=archive)
        image = f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/clinops-inference:{BUILD_IMAGE_TAG}"
        arn = self.sagemaker.create_model_package(
            ModelPackageGroupName=model,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": image, "ModelDataUrl": f"s3://{self.build_bucket()}/{key}"}],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]
        self.identities[arn] = (author, None)
        return str(arn)

    def decide(self, arn: str, status: str, note: str, approver: dict[str, Any]) -> dict[str, Any]:
        """A reviewer's decision in the registry; returns the EventBridge event SageMaker sends for it."""
        kept = self.sagemaker.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties")
        extra = {"CustomerMetadataProperties": kept} if kept else {}  # moto drops them on an update without them
        self.sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=note, **extra
        )
        self.identities[arn] = (self.identities.get(arn, (None, None))[0], approver)
        from serving.guardrails.events import PACKAGE_DETAIL_TYPE, PACKAGE_SOURCE

        described = self.sagemaker.describe_model_package(ModelPackageName=arn)
        return {
            "version": "0",
            "id": f"rehearsal-{names.package_group(arn)}-v{names.package_version(arn)}-{status.lower()}",
            "detail-type": PACKAGE_DETAIL_TYPE,
            "source": PACKAGE_SOURCE,
            "account": self.account,
            "time": described["LastModifiedTime"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [arn],
            "detail": {
                "ModelPackageGroupName": names.package_group(arn),
                "ModelPackageVersion": names.package_version(arn),
                "ModelPackageArn": arn,
                "ModelApprovalStatus": status,
            },
        }

    # -- `pulumi up` -------------------------------------------------------------------------------------------

    def deploy(self, config: StackConfig) -> None:
        """What `pulumi up` of this stack configuration leaves behind, for every pinned model."""
        for model in config.models:
            if not model.package_arn:
                continue
            packages = [model.package_arn]
            if model.last_known_good_package_arn:
                packages.append(model.last_known_good_package_arn)
            for package in packages:
                self._endpoint_config(config, model, package)
            pinned = names.config_name(config.stack, model.name, model.package_arn)
            lkg = model.last_known_good_package_arn
            self._put(names.pinned_parameter(config.stack, model.name), pinned)
            self._put(
                names.last_known_good_parameter(config.stack, model.name),
                names.config_name(config.stack, model.name, lkg) if lkg else names.NONE,
            )
            self._alarms(config, model)
            endpoint = names.endpoint_name(config.stack, model.name)
            self.serve(endpoint, pinned, self._release_deployment(config, model), [])  # up waits for InService

    def serve(self, endpoint: str, endpoint_config: str, deployment: dict[str, Any], statuses: list[str]) -> None:
        """The endpoint as SageMaker shows it once a deployment to `endpoint_config` is done (moto has no
        UpdateEndpoint: the endpoint is re-created on the new configuration)."""
        with contextlib.suppress(self.sagemaker.moto.exceptions.ClientError):
            self.sagemaker.moto.delete_endpoint(EndpointName=endpoint)
        self.sagemaker.moto.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint_config)
        self.views[endpoint] = EndpointView(deployment, list(statuses))

    def _put(self, name: str, value: str) -> None:
        self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    def _endpoint_config(self, config: StackConfig, model: ModelConfig, package: str) -> None:
        name = names.config_name(config.stack, model.name, package)
        with contextlib.suppress(self.sagemaker.moto.exceptions.ClientError):
            self.sagemaker.moto.describe_endpoint_config(EndpointConfigName=name)
            return  # configurations are immutable: Pulumi keeps an existing one
        self.sagemaker.moto.create_model(
            ModelName=names.model_name(config.stack, model.name, package),
            ExecutionRoleArn=f"arn:aws:iam::{self.account}:role/clinops-{config.stack}-sagemaker-execution",
            PrimaryContainer={"ModelPackageName": package},
        )
        self.sagemaker.moto.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": names.VARIANT,
                    "ModelName": names.model_name(config.stack, model.name, package),
                    "InitialInstanceCount": model.serving.min_instances,
                    "InstanceType": model.serving.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": model.serving.data_capture_percent,
                "DestinationS3Uri": f"s3://{self.capture_bucket(config)}/{model.name}",
                "KmsKeyId": self.capture_key,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
            Tags=[{"Key": "clinops:package", "Value": package}],
        )

    def _release_deployment(self, config: StackConfig, model: ModelConfig) -> dict[str, Any]:
        release = model.serving.release
        routing: dict[str, Any] = {"Type": release.strategy, "WaitIntervalInSeconds": release.wait_seconds}
        step = {"Type": "CAPACITY_PERCENT", "Value": release.canary_percent}
        if release.strategy == "CANARY":
            routing["CanarySize"] = step
        elif release.strategy == "LINEAR":
            routing["LinearStepSize"] = step
        return {
            "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing},
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": alarm} for alarm in names.alarm_names(config.stack, model.name)]
            },
        }

    def _alarms(self, config: StackConfig, model: ModelConfig) -> None:
        """The rollback and breaker alarms, created OK (healthy traffic) the first time; later deploys keep them."""
        for suffix in (*names.ROLLBACK_ALARM_SUFFIXES, *names.BREAKER_ALARM_SUFFIXES):
            alarm = names.alarm_name(config.stack, model.name, suffix)
            if self.cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]:
                continue
            self.cloudwatch.put_metric_alarm(
                AlarmName=alarm,
                Namespace="clinops",
                MetricName=suffix,
                Dimensions=[{"Name": "EndpointName", "Value": names.endpoint_name(config.stack, model.name)}],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0.0,
                ComparisonOperator="GreaterThanThreshold",
                ActionsEnabled=True,
                AlarmActions=[self.topic_arn],
            )
            self.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="rehearsal: healthy traffic")

    # -- CloudWatch --------------------------------------------------------------------------------------------

    def fire(self, alarm: str, reason: str) -> dict[str, Any]:
        """The alarm enters ALARM (moto does not evaluate metric data: its state is set, as CloudWatch would);
        returns the EventBridge "CloudWatch Alarm State Change" event the breaker's rule delivers."""
        before = self.cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
        self.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason=reason)
        after = self.cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
        changed = after["StateUpdatedTimestamp"]

        def stamp(value: Any) -> str:
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"

        return {
            "version": "0",
            "id": f"rehearsal-{alarm}-{int(changed.timestamp() * 1000)}",
            "detail-type": names.ALARM_DETAIL_TYPE,
            "source": names.ALARM_SOURCE,
            "account": self.account,
            "time": changed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [after["AlarmArn"]],
            "detail": {
                "alarmName": alarm,
                "state": {"value": "ALARM", "reason": reason, "timestamp": stamp(changed)},
                "previousState": {
                    "value": before["StateValue"],
                    "reason": before.get("StateReason", ""),
                    "timestamp": stamp(before["StateUpdatedTimestamp"]),
                },
                "configuration": {"description": after.get("AlarmDescription", ""), "metrics": []},
            },
        }
