"""What a training pipeline definition is built from, and the facts its builder, steps and checks share.

Shared by `training` (the builder), `steps` (the sagemaker SDK steps) and `checks` (service-model and security
checks); it imports none of them, so the three have no cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clinops.identity import ROLE_ARN
from pipelines.settings import GateSettings, TrainingSettings

_ROLE = ROLE_ARN
_KMS = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+$")
_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")
_TRACKING_SERVER = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[A-Za-z0-9-]+$")
# The one place a step may run without network isolation, and why. Such a step still runs in the private subnets
# with the workload security group: no internet route, only the VPC endpoints. Every other step is isolated
# (checks.py fails the build otherwise; the gate's CLIN-SM-002 accepts TrackRun only with its VPC, this stack's
# tracking server and the MLflow endpoint, and DecideRelease only through its reviewed exception).
NETWORK_ALLOWED_STEPS: dict[str, str] = {
    "DecideRelease": "reads the SageMaker model registry (sagemaker.api endpoint) to find the approved model",
    "TrackRun": "logs the run to the stack's MLflow tracking server through its VPC endpoint "
    "(reads aggregate reports and the model only, never patient rows)",
}
# Steps that log to MLflow: the definition gives them the tracking server ARN as MLFLOW_TRACKING_URI.
TRACKING_STEPS = frozenset({"TrackRun"})
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
    "TrackRun": "artifact",
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
    tracking_server_arn: str  # the stack's SageMaker-managed MLflow server (infra.tracking): TrackRun logs there
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
        if not _TRACKING_SERVER.match(self.tracking_server_arn):
            problems.append(
                f"tracking_server_arn '{self.tracking_server_arn}' is not an MLflow tracking server ARN "
                "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>)"
            )
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
