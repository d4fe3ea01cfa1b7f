"""The SageMaker pipeline for one configured model, built with the sagemaker SDK from the same step code.

    ValidateContract -> SplitData -> TrainModel -> ScoreTestSet -> EvaluateModel -> CheckFairness
      -> DecideRelease -> WriteModelCard -> TrackRun
      -> CheckGates -> RegisterModel (PendingManualApproval) | GatesFailed

Every job runs in the platform's private subnets with its security group, the foundation's execution role,
KMS on volumes and outputs, inter-container encryption and network isolation, except the steps named (with
their reason) in `settings.NETWORK_ALLOWED_STEPS`: DecideRelease calls the SageMaker registry (through the VPC
endpoints) to find the approved model, and TrackRun logs the run - parameters, metrics, dataset hash, card and
model - to the stack's SageMaker-managed MLflow server (MLFLOW_TRACKING_URI = its ARN) through the MLflow VPC
endpoint, with the same `pipelines.tracking.record_run` the local runner uses. Patient-level outputs
(validated table, splits, test-set scores) go to the data bucket under the data key; the model and aggregate
evidence go to the artifact bucket under the artifact key (see OUTPUT_CLASS). Processing steps run the
clinops step image with `python3 -m pipelines.steps.<step>`; the training job runs the same image's `train`
executable (SageMaker's bring-your-own-container contract), which must run `python3 -m pipelines.steps.train`.

Building makes no network call: the session has dummy credentials and a preset bucket, code is in the image
(nothing to upload), and the SDK's telemetry sender is replaced by a no-op for the duration of the build.
Each step's request is then checked against botocore's SageMaker service model (`pipelines.definitions.checks`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

from pipelines.definitions.checks import assert_security_properties, validate_against_service_model
from pipelines.definitions.settings import PipelineDefinitionSettings

os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")


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
        from pipelines.definitions.steps import build_pipeline

        definition = build_pipeline(settings, _session(settings)).definition()
    validate_against_service_model(definition)
    assert_security_properties(definition, settings)
    return definition
