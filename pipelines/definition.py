"""The SageMaker pipeline for one configured model, built with the sagemaker SDK from the same step code.

    ValidateContract -> SplitData -> TrainModel -> ScoreTestSet -> EvaluateModel -> CheckFairness
      -> DecideRelease -> WriteModelCard -> CheckGates -> RegisterModel (PendingManualApproval) | GatesFailed

Every job runs in the platform's private subnets with its security group, the foundation's execution role,
KMS on volumes and outputs, inter-container encryption and network isolation, except DecideRelease, which must
call the SageMaker registry (through the VPC endpoints) to find the approved model. Patient-level outputs
(validated table, splits, test-set scores) go to the data bucket under the data key; the model and aggregate
evidence go to the artifact bucket under the artifact key (see OUTPUT_CLASS). Processing steps run the
clinops step image with `python3 -m pipelines.steps.<step>`; the training job runs the same image's `train`
executable (SageMaker's bring-your-own-container contract), which must run `python3 -m pipelines.steps.train`.

Building makes no network call: the session has dummy credentials and a preset bucket, code is in the image
(nothing to upload), and the SDK's telemetry sender is replaced by a no-op for the duration of the build.
Each step's request is then checked against botocore's SageMaker service model (`pipelines.definition_checks`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipelines.settings import GateSettings, TrainingSettings

os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")

_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_KMS = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+$")
_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")
NETWORK_ALLOWED_STEPS = frozenset({"DecideRelease"})  # reads the model registry to find the approved model
PROCESSING_ROOT = "/opt/ml/processing"
# What each job writes. "data": patient-level rows (de-identified, still about patients) - the data bucket and
# key, never shared. "artifact": the model and aggregate evidence - the artifact bucket and key, which other
# accounts may read to promote a model. No job writes both, because one job has one output key.
OUTPUT_CLASS = {
    "ValidateContract": "data",
    "SplitData": "data",
    "ScoreTestSet": "data",
    "TrainModel": "artifact",
    "EvaluateModel": "artifact",
    "CheckFairness": "artifact",
    "DecideRelease": "artifact",
    "WriteModelCard": "artifact",
}


class DefinitionError(ValueError):
    """The settings or the built definition break a requirement; `problems` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("pipeline definition rejected:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class PipelineDefinitionSettings:
    """Everything the definition needs; the platform stack supplies these from its foundation outputs."""

    model_name: str
    region: str
    role_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    volume_kms_key_arn: str  # job volumes hold patient data: the data key, or one as strict
    data_kms_key_arn: str
    artifact_kms_key_arn: str
    data_bucket: str
    artifact_bucket: str
    model_package_group_name: str
    step_image_uri: str
    inference_image_uri: str
    processing_instance_type: str = "ml.m5.xlarge"
    training_instance_type: str = "ml.m5.xlarge"
    inference_instance_types: tuple[str, ...] = ("ml.m5.large",)
    gate: GateSettings = field(default_factory=GateSettings)
    training: TrainingSettings = field(default_factory=lambda: TrainingSettings(threads=0))
    data_s3_uri: str = ""  # default: s3://<data_bucket>/<model>/data/
    contract_s3_uri: str = ""  # default: s3://<artifact_bucket>/<model>/contract/
    max_runtime_seconds: int = 3600
    volume_size_gb: int = 30
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not _ROLE.match(self.role_arn):
            problems.append(f"role_arn '{self.role_arn}' is not an IAM role ARN")
        for name in ("volume_kms_key_arn", "data_kms_key_arn", "artifact_kms_key_arn"):
            if not _KMS.match(getattr(self, name)):
                problems.append(f"{name} '{getattr(self, name)}' is not a KMS key or alias ARN")
        if not self.subnet_ids or not all(s.startswith("subnet-") for s in self.subnet_ids):
            problems.append(f"subnet_ids {list(self.subnet_ids)} must be one or more subnet-... IDs")
        if not self.security_group_ids or not all(s.startswith("sg-") for s in self.security_group_ids):
            problems.append(f"security_group_ids {list(self.security_group_ids)} must be one or more sg-... IDs")
        for name in ("step_image_uri", "inference_image_uri"):
            if not _IMAGE.match(getattr(self, name)):
                problems.append(f"{name} '{getattr(self, name)}' is not an ECR image URI with a tag or digest")
        if self.data_bucket == self.artifact_bucket:
            problems.append(
                "data_bucket and artifact_bucket must differ: patient-level rows never share a bucket "
                "with artifacts other accounts read"
            )
        if problems:
            raise DefinitionError(problems)

    @property
    def pipeline_name(self) -> str:
        return f"clinops-{self.model_name}-training"

    @property
    def data_uri(self) -> str:
        return self.data_s3_uri or f"s3://{self.data_bucket}/{self.model_name}/data/"

    @property
    def contract_uri(self) -> str:
        return self.contract_s3_uri or f"s3://{self.artifact_bucket}/{self.model_name}/contract/"

    def bucket_for(self, step: str) -> str:
        return self.data_bucket if OUTPUT_CLASS[step] == "data" else self.artifact_bucket

    def output_key_for(self, step: str) -> str:
        return self.data_kms_key_arn if OUTPUT_CLASS[step] == "data" else self.artifact_kms_key_arn


@contextlib.contextmanager
def _offline_sdk() -> Iterator[None]:
    """Keep the SDK off the network while building.

    - Importing `sagemaker.mlops` creates a boto3 client at class-definition time, and credential resolution
      would probe the EC2 instance metadata service: disabled for the duration (restored afterwards).
    - The telemetry sender would call STS and a telemetry endpoint: replaced by a no-op for the duration.
    - Some SDK modules call `logging.basicConfig` on import: the root logger is restored afterwards.
    """
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    previous_imds = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sagemaker.mlops.workflow  # noqa: F401 - the import itself is what needs the guards above
        from sagemaker.core.telemetry import telemetry_logging

    original = telemetry_logging._send_telemetry_request
    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: None
    quiet = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("sagemaker")]
    levels = {logger: logger.level for logger in quiet}
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        telemetry_logging._send_telemetry_request = original
        if previous_imds is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous_imds
        for logger, level in levels.items():
            logger.setLevel(level)
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]


def _session(settings: PipelineDefinitionSettings) -> Any:
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    boto_session = boto3.Session(
        aws_access_key_id="offline", aws_secret_access_key="offline", region_name=settings.region
    )
    session = PipelineSession(boto_session=boto_session, default_bucket=settings.artifact_bucket)
    session._default_bucket = settings.artifact_bucket  # otherwise the SDK looks the bucket up (and may create it)
    return session


def build_pipeline_definition(settings: PipelineDefinitionSettings) -> str:
    """The pipeline definition JSON for `aws.sagemaker.Pipeline`, validated and security-checked."""
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.region)  # an SDK module creates a client on import
    with _offline_sdk():
        from pipelines.definition_steps import build_pipeline

        definition = build_pipeline(settings, _session(settings)).definition()
    from pipelines.definition_checks import assert_security_properties, validate_against_service_model

    validate_against_service_model(definition)
    assert_security_properties(definition, settings)
    return definition
