"""The SageMaker pipeline definition: built offline from the sagemaker SDK, checked against botocore's service
model, and holding the VPC, KMS, isolation, encryption and approval settings."""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
from dataclasses import replace
from typing import Any

import pytest

from pipelines.definitions.checks import (
    assert_security_properties,
    job_steps,
    security_properties,
    validate_against_service_model,
)
from pipelines.definitions.settings import DefinitionError, PipelineDefinitionSettings
from pipelines.definitions.training import build_pipeline_definition

ACCOUNT = "111111111111"
SETTINGS = PipelineDefinitionSettings(
    model_name="readmission-risk",
    region="us-east-1",
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/clinops-dev-sagemaker-execution",
    subnet_ids=("subnet-0aaa1111", "subnet-0bbb2222"),
    security_group_ids=("sg-0ccc3333",),
    volume_kms_key_arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1111aaaa-phi",
    data_kms_key_arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1111aaaa-phi",
    artifact_kms_key_arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/2222bbbb-artifacts",
    data_bucket="clinops-dev-phi-data",
    artifact_bucket="clinops-dev-model-artifacts",
    model_package_group_name="readmission-risk",
    step_image_uri=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/clinops-steps:1.0.0",
    inference_image_uri=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/clinops-serve:1.0.0",
    tracking_server_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-tracking-server/clinops-dev-mlflow",
    tags={"clinops:environment": "dev"},
)
ARTIFACT_KEY = SETTINGS.artifact_kms_key_arn
EXPECTED_STEPS = [
    "ValidateContract",
    "SplitData",
    "TrainModel",
    "ScoreTestSet",
    "EvaluateModel",
    "CheckFairness",
    "DecideRelease",
    "WriteModelCard",
    "TrackRun",
    "CheckGates",
    "RegisterModel",
    "GatesFailed",
]


@pytest.fixture(scope="module")
def definition_text() -> str:
    """Built once, with every socket connect refused: building must not touch the network."""
    attempts: list[Any] = []
    original = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    root = logging.getLogger()
    root_before = (root.level, list(root.handlers))
    imds_before = os.environ.get("AWS_EC2_METADATA_DISABLED")
    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        text = build_pipeline_definition(SETTINGS)
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
    assert attempts == []
    assert (root.level, list(root.handlers)) == root_before  # the SDK's basicConfig calls were undone
    assert os.environ.get("AWS_EC2_METADATA_DISABLED") == imds_before
    return text


@pytest.fixture(scope="module")
def definition(definition_text: str) -> dict[str, Any]:
    return json.loads(definition_text)


def _step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in job_steps(doc) if s["Name"] == name)


def test_steps_and_branches(definition: dict[str, Any]) -> None:
    assert [s["Name"] for s in job_steps(definition)] == EXPECTED_STEPS
    gates = _step(definition, "CheckGates")["Arguments"]
    assert [s["Name"] for s in gates["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gates["ElseSteps"]] == ["GatesFailed"]
    assert gates["Conditions"][0]["LeftValue"]["Std:JsonGet"]["Path"] == "register"
    entry = _step(definition, "ValidateContract")["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
    assert entry == ["python3", "-m", "pipelines.steps.validate"]


def test_thresholds_and_instance_types_are_parameters(definition: dict[str, Any]) -> None:
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["MinAuc"]["DefaultValue"] == 0.70 and params["MinAuc"]["Type"] == "Float"
    assert params["MaxSubgroupAucGap"]["DefaultValue"] == 0.10 and params["MaxRegression"]["DefaultValue"] == 0.02
    assert params["MinSubgroupSize"]["Type"] == "Integer" and params["MinSubgroupSize"]["DefaultValue"] == 100
    assert params["TrainingInstanceType"]["DefaultValue"] == "ml.m5.xlarge"
    decide_args = json.dumps(_step(definition, "DecideRelease")["Arguments"]["AppSpecification"]["ContainerArguments"])
    assert params["MaxSubgroupTprGap"]["DefaultValue"] == 0.10 and params["MaxSubgroupFprGap"]["DefaultValue"] == 0.10
    names = ("MinAuc", "MaxSubgroupAucGap", "MaxSubgroupTprGap", "MaxSubgroupFprGap", "MaxComparatorShortfall")
    for name in (*names, "MaxRegression", "MinSubgroupSize"):
        assert f"Parameters.{name}" in decide_args
    training = _step(definition, "TrainModel")["Arguments"]["ResourceConfig"]["InstanceType"]
    assert training == {"Get": "Parameters.TrainingInstanceType"}


def test_every_job_holds_the_security_properties(definition: dict[str, Any]) -> None:
    checked = assert_security_properties(definition, SETTINGS)
    jobs = {p.step for p in checked if p.name == "RoleArn"}
    assert jobs == set(EXPECTED_STEPS) - {"CheckGates", "RegisterModel", "GatesFailed"}
    for name in jobs - {"TrainModel"}:
        network = _step(definition, name)["Arguments"]["NetworkConfig"]
        assert network["VpcConfig"] == {
            "SecurityGroupIds": ["sg-0ccc3333"],
            "Subnets": ["subnet-0aaa1111", "subnet-0bbb2222"],
        }
        assert network["EnableInterContainerTrafficEncryption"] is True
        assert network["EnableNetworkIsolation"] is (name not in ("DecideRelease", "TrackRun"))
    training = _step(definition, "TrainModel")["Arguments"]
    assert training["EnableNetworkIsolation"] and training["EnableInterContainerTrafficEncryption"]
    assert training["ResourceConfig"]["VolumeKmsKeyId"] == SETTINGS.volume_kms_key_arn
    assert training["OutputDataConfig"]["KmsKeyId"] == SETTINGS.artifact_kms_key_arn


def test_patient_level_outputs_stay_in_the_data_bucket_under_the_data_key(definition: dict[str, Any]) -> None:
    where = {}
    for step in job_steps(definition):
        for output in step["Arguments"].get("ProcessingOutputConfig", {}).get("Outputs", []):
            bucket = output["S3Output"]["S3Uri"]["Std:Join"]["Values"][0].removeprefix("s3://")
            where[output["OutputName"]] = (bucket, step["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"])
    data = ("clinops-dev-phi-data", SETTINGS.data_kms_key_arn)
    artifact = ("clinops-dev-model-artifacts", SETTINGS.artifact_kms_key_arn)
    for name in ("validated", "report", "train", "calibration", "test", "summary", "predictions"):
        assert where[name] == data, name
    for name in ("evaluation", "fairness", "decision", "card", "tracking"):
        assert where[name] == artifact, name


def test_the_tracking_step_logs_to_the_stacks_server_from_aggregate_inputs(definition: dict[str, Any]) -> None:
    track = _step(definition, "TrackRun")["Arguments"]
    assert track["Environment"] == {"MLFLOW_TRACKING_URI": SETTINGS.tracking_server_arn}  # a literal, not a parameter
    assert track["AppSpecification"]["ContainerEntrypoint"] == ["python3", "-m", "pipelines.steps.track"]
    # what it reads: the model and aggregate reports, never a patient-level output (validated, splits, scores)
    sources = {i["InputName"]: json.dumps(i["S3Input"]["S3Uri"]) for i in track["ProcessingInputs"]}
    assert set(sources) == {"model", "report", "evaluation", "fairness", "decision", "card"}
    assert "TrainModel.ModelArtifacts" in sources["model"] and "ValidateContract" in sources["report"]
    arguments = track["AppSpecification"]["ContainerArguments"]
    assert json.loads(arguments[arguments.index("--training") + 1]) == SETTINGS.training.model_dump()
    assert arguments[arguments.index("--run-name") + 1] == {"Get": "Execution.PipelineExecutionId"}
    others = [s["Name"] for s in job_steps(definition) if s["Name"] != "TrackRun"]
    assert all("Environment" not in _step(definition, n)["Arguments"] for n in others)
    # the registry entry names the MLflow run, so registration waits for the run to be recorded
    run_id = _step(definition, "RegisterModel")["Arguments"]["CustomerMetadataProperties"]["mlflow_run_id"]
    assert run_id["Std:JsonGet"]["PropertyFile"]["Get"] == "Steps.TrackRun.PropertyFiles.Tracking"


def test_registration_is_pending_manual_approval_with_metrics_and_card(definition: dict[str, Any]) -> None:
    register = _step(definition, "RegisterModel")["Arguments"]
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert register["ModelPackageGroupName"] == "readmission-risk"
    assert "model-quality.json" in json.dumps(register["ModelMetrics"]["ModelQuality"]["Statistics"])
    assert "fairness.json" in json.dumps(register["ModelMetrics"]["Bias"]["Report"])
    assert register["ModelCard"]["ModelCardContent"]["Std:JsonGet"]["Path"] == "model_card_content"
    metadata = register["CustomerMetadataProperties"]
    for key in ("auc", "brier", "max_subgroup_auc_gap", "operating_threshold"):  # what the release step reads
        assert metadata[key]["Std:JsonGet"]["Path"] == f"metadata.{key}"
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("TrainModel", "EnableNetworkIsolation"), False, "EnableNetworkIsolation"),
        (("EvaluateModel", "ProcessingOutputConfig", "KmsKeyId"), None, "ProcessingOutputConfig.KmsKeyId"),
        (("ScoreTestSet", "ProcessingOutputConfig", "KmsKeyId"), ARTIFACT_KEY, "ProcessingOutputConfig.KmsKeyId"),
        (("SplitData", "NetworkConfig", "VpcConfig", "Subnets"), ["subnet-public"], "Subnets"),
        (("RegisterModel", "ModelApprovalStatus"), "Approved", "ModelApprovalStatus"),
        (("WriteModelCard", "NetworkConfig", "EnableNetworkIsolation"), False, "EnableNetworkIsolation"),
        (("TrackRun", "NetworkConfig", "EnableNetworkIsolation"), True, "EnableNetworkIsolation"),
        (
            ("TrackRun", "Environment", "MLFLOW_TRACKING_URI"),
            "arn:aws:sagemaker:us-east-1:222222222222:mlflow-tracking-server/elsewhere",
            "MLFLOW_TRACKING_URI",
        ),
    ],
)
def test_security_check_catches_each_weakening(
    definition: dict[str, Any], path: tuple[str, ...], value: Any, expected: str
) -> None:
    broken = copy.deepcopy(definition)
    target = _step(broken, path[0])["Arguments"]
    for key in path[1:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(DefinitionError, match=expected):
        assert_security_properties(broken, SETTINGS)
    assert sum(not p.ok for p in security_properties(broken, SETTINGS)) == 1


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _step(d, "SplitData")["Arguments"]["ProcessingResources"]["ClusterConfig"].update(
                InstanceCount="one"
            ),
            "Invalid type for parameter",
        ),
        (lambda d: _step(d, "TrainModel")["Arguments"].update(EnableNetworkIsolaton=True), "Unknown parameter"),
        (lambda d: _step(d, "RegisterModel")["Arguments"].update(ModelApprovalStatus="Approvd"), "is not one of"),
        (
            lambda d: _step(d, "TrainModel")["Arguments"]["StoppingCondition"].update(MaxRuntimeInSeconds=0),
            "below the minimum",
        ),
        (
            lambda d: next(p for p in d["Parameters"] if p["Name"] == "ProcessingInstanceType").update(
                DefaultValue="m5.xlarge"
            ),
            "parameter ProcessingInstanceType default",
        ),
        (
            lambda d: _step(d, "ValidateContract")["Arguments"]["ProcessingInputs"][0]["S3Input"].update(
                S3Uri="ftp://bucket/key"
            ),
            "does not match the pattern",
        ),
    ],
)
def test_service_model_validation_catches_bad_requests(definition: dict[str, Any], mutate: Any, expected: str) -> None:
    validate_against_service_model(definition)  # the real one passes
    broken = copy.deepcopy(definition)
    mutate(broken)
    with pytest.raises(DefinitionError, match=expected):
        validate_against_service_model(broken)


def test_settings_are_validated_before_building() -> None:
    with pytest.raises(DefinitionError) as caught:
        replace(
            SETTINGS,
            role_arn="admin",
            subnet_ids=(),
            volume_kms_key_arn="alias/aws/s3",
            step_image_uri="python:3.11",
            data_bucket=SETTINGS.artifact_bucket,
            tracking_server_arn="http://mlflow.internal:5000",
        )
    text = str(caught.value)
    named = ("role_arn", "subnet_ids", "volume_kms_key_arn", "step_image_uri", "must differ", "tracking_server_arn")
    assert all(s in text for s in named)


def test_model_card_content_fits_sagemakers_schema() -> None:
    from sagemaker.core.shapes.model_card_shapes import ModelCardContent

    from pipelines.steps.card import sagemaker_card_content

    card = {
        "model": {"estimator": "HistGradientBoostingClassifier"},
        "intended_use": "Prioritise outreach.",
        "out_of_scope": ["Paediatrics"],
        "risk_rating": "High",
        "limitations": ["Synthetic data."],
        "training_data": {"dataset_sha256": "sha256:00", "contract": {"name": "readmission-risk", "version": "1.0.0"}},
        "metrics": {
            "candidate": {
                "auc": 0.8,
                "auc_ci95": [0.78, 0.82],
                "pr_auc": 0.4,
                "brier": 0.1,
                "calibration_slope": 1.0,
                "calibration_intercept": 0.0,
                "ece": 0.01,
            }
        },
        "fairness": [{"attribute": "sex", "group": "F", "auc": 0.8, "n": 500, "status": "ok"}],
        "decision": {"verdict": "PendingManualApproval"},
    }
    ModelCardContent.model_validate(sagemaker_card_content(card))


def test_the_definition_is_deterministic(definition_text: str) -> None:
    """Pulumi diffs the definition string: a nondeterministic build would update the pipeline on every `up`."""
    assert build_pipeline_definition(SETTINGS) == definition_text
