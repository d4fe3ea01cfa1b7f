"""The thin entry points the SageMaker jobs run, chained on files laid out as in the jobs' containers."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from datetime import date
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from pipelines import jobio as _io
from pipelines import tracking
from pipelines.contracts import builtin_contract_path
from pipelines.data.injections import Injections
from pipelines.data.synthetic import generate_readmission
from pipelines.steps import card as card_step
from pipelines.steps import decide as decide_step
from pipelines.steps import evaluate as evaluate_step
from pipelines.steps import fairness as fairness_step
from pipelines.steps import score as score_step
from pipelines.steps import split as split_step
from pipelines.steps import track as track_step
from pipelines.steps import train as train_step
from pipelines.steps import validate as validate_step


@pytest.fixture
def failure_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "opt-ml-output" / "message"
    path.parent.mkdir()
    monkeypatch.setattr(_io, "FAILURE_FILES", (path,))
    return path


def test_entry_points_chain_like_the_sagemaker_jobs(
    tmp_path: Path, failure_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "processing"
    contract_dir = root / "input" / "contract"
    contract_dir.mkdir(parents=True)
    (contract_dir / "readmission-risk.yaml").write_text(builtin_contract_path("readmission-risk").read_text())
    data = root / "input" / "data" / "extract.csv"
    data.parent.mkdir(parents=True)
    generate_readmission(5000, seed=12, end_date=date(2025, 7, 1)).to_csv(data, index=False)

    assert (
        validate_step.main(
            [
                "--data",
                str(data.parent),
                "--contract",
                str(contract_dir),
                "--as-of",
                "2025-07-01",
                "--output",
                str(root / "output/validated"),
                "--report",
                str(root / "output/report"),
            ]
        )
        == 0
    )
    assert (
        split_step.main(
            [
                "--validated",
                str(root / "output/validated"),
                "--contract",
                str(contract_dir),
                "--output",
                str(root / "output"),
            ]
        )
        == 0
    )
    summary = json.loads((root / "output/summary/split-summary.json").read_text())
    assert summary["dataset_sha256"] == _io.dataset_sha256(data) and summary["test"]["rows"] > 0

    model_dir = tmp_path / "opt-ml-model"
    hyperparameters = tmp_path / "hyperparameters.json"
    hyperparameters.write_text(json.dumps({"seed": "3", "max_iter": "60", "threads": "1"}))  # SageMaker: strings
    assert (
        train_step.main(
            [
                "--train",
                str(root / "output/train"),
                "--calibration",
                str(root / "output/calibration"),
                "--contract",
                str(contract_dir),
                "--summary",
                str(root / "output/summary"),
                "--hyperparameters",
                str(hyperparameters),
                "--model-dir",
                str(model_dir),
            ]
        )
        == 0
    )
    archive = tmp_path / "model-artifacts" / "model.tar.gz"  # what the training job uploads
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for file in model_dir.iterdir():
            tar.add(file, arcname=file.name)

    predictions, evaluation_dir = root / "output/predictions", root / "output/evaluation"
    model = ["--model", str(archive.parent)]
    assert score_step.main([*model, "--test", str(root / "output/test"), "--output", str(predictions)]) == 0
    assert evaluate_step.main([*model, "--predictions", str(predictions), "--output", str(evaluation_dir)]) == 0
    evaluation_file = root / "output/evaluation/evaluation.json"
    assert (
        fairness_step.main(
            [
                "--predictions",
                str(root / "output/predictions"),
                "--evaluation",
                str(evaluation_file),
                "--contract",
                str(contract_dir),
                "--output",
                str(root / "output/fairness"),
                "--min-subgroup-size",
                "30",
                "--min-subgroup-events",
                "3",
            ]
        )
        == 0
    )
    approved = tmp_path / "approved.json"
    approved.write_text(json.dumps({"version": "arn:aws:sagemaker:us-east-1:1:model-package/r/3", "auc": 0.99}))
    assert (
        decide_step.main(
            [
                "--evaluation",
                str(evaluation_file),
                "--fairness",
                str(root / "output/fairness"),
                "--output",
                str(root / "output/decision"),
                "--approved-metrics",
                str(approved),
                "--max-subgroup-auc-gap",
                "0.5",
                "--min-subgroup-size",
                "30",
                "--min-subgroup-events",
                "3",
            ]
        )
        == 0
    )
    decision = json.loads((root / "output/decision/decision.json").read_text())
    assert decision["verdict"] == "Rejected" and "worse than" in decision["summary"]  # 0.99 is out of reach

    assert (
        card_step.main(
            [
                "--model",
                str(archive.parent),
                "--evaluation",
                str(evaluation_file),
                "--fairness",
                str(root / "output/fairness"),
                "--decision",
                str(root / "output/decision"),
                "--split-summary",
                str(root / "output/summary"),
                "--contract-report",
                str(root / "output/report/contract-report.json"),
                "--output",
                str(root / "output/card"),
            ]
        )
        == 0
    )
    prop = json.loads((root / "output/card/card-property.json").read_text())
    assert json.loads(prop["model_card_content"])["intended_uses"]["risk_rating"] == "High"
    assert prop["metadata"]["auc"] == f"{json.loads(evaluation_file.read_text())['candidate']['auc']:.6f}"
    assert "Not registered (Rejected)" in (root / "output/card/model-card.md").read_text()
    assert not failure_file.exists()

    # TrackRun: the earlier outputs mounted under one input directory, the tracking URI from the environment (in
    # the pipeline, the stack's server ARN; here a local sqlite store), logged by the local runner's function.
    inputs = tmp_path / "track-inputs"
    for name, source in {
        "model": archive.parent,
        "report": root / "output/report",
        "evaluation": evaluation_dir,
        "fairness": root / "output/fairness",
        "decision": root / "output/decision",
        "card": root / "output/card",
    }.items():
        shutil.copytree(source, inputs / name)
    uri = tracking.default_tracking_uri(tmp_path / "mlflow-store")
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
    recorded: list[str] = []
    record_run = tracking.record_run
    monkeypatch.setattr(tracking, "record_run", lambda u, **kw: recorded.append(u) or record_run(u, **kw))
    training = {"seed": 3, "max_iter": 60, "threads": 1}
    args = ["--inputs", str(inputs), "--output", str(root / "output/tracking"), "--run-name", "execution-1"]
    assert track_step.main([*args, "--training", json.dumps(training), "--data-source", "s3://data/extract/"]) == 0
    assert recorded == [uri]
    written = json.loads((root / "output/tracking/tracking.json").read_text())
    client = tracking.client(uri)
    run = client.get_run(written["mlflow_run_id"])
    assert run.info.run_name == "execution-1" and run.info.status == "FINISHED"
    assert run.data.tags["verdict"] == "Rejected" and run.data.tags["stopped_at"] == "decide"
    assert run.data.tags["dataset_sha256"] == _io.dataset_sha256(data)
    assert run.data.params["gate.max_subgroup_auc_gap"] == "0.5" and run.data.params["training.max_iter"] == "60"
    assert run.data.params["data_source"] == "s3://data/extract/"
    assert run.data.metrics["test.candidate.auc"] == json.loads(evaluation_file.read_text())["candidate"]["auc"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {*tracking.REPORT_ARTIFACTS, "bundle"}
    assert "model-card.md" in {a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "card")}
    assert written["model_uri"].startswith("models:/")
    assert not failure_file.exists()


def test_tracking_entry_point_needs_a_tracking_uri(
    tmp_path: Path, failure_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    assert track_step.main(["--inputs", str(tmp_path)]) == 2
    assert "MLFLOW_TRACKING_URI" in failure_file.read_text()
    arn = "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/clinops-dev-mlflow"
    assert tracking.is_managed_server(arn) and not tracking.is_managed_server("sqlite:///x.db")


def test_validation_entry_point_fails_the_job_with_a_phi_free_reason(tmp_path: Path, failure_file: Path) -> None:
    data = tmp_path / "extract.csv"
    table = generate_readmission(400, seed=2, end_date=date(2025, 7, 1), injections=Injections(schema_break="retype"))
    table.to_csv(data, index=False)
    code = validate_step.main(
        [
            "--data",
            str(data),
            "--contract",
            str(builtin_contract_path("readmission-risk")),
            "--as-of",
            "2025-07-01",
            "--output",
            str(tmp_path / "v"),
            "--report",
            str(tmp_path / "r"),
        ]
    )
    assert code == 1 and not (tmp_path / "v").exists()
    reason = failure_file.read_text()
    assert reason.startswith("contract violated: prior_admissions_12m") and "MRN" not in reason
    assert json.loads((tmp_path / "r" / "contract-report.json").read_text())["status"] == "violated"
    assert validate_step.main(["--data", str(tmp_path / "none.csv"), "--contract", str(tmp_path)]) == 2


def test_approved_model_from_the_sagemaker_registry() -> None:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    sagemaker, s3 = session.client("sagemaker"), session.client("s3")
    arn = "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/4"
    with Stubber(sagemaker) as sm, Stubber(s3) as bucket:
        sm.add_response(
            "list_model_packages",
            {
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": arn,
                        "ModelPackageStatus": "Completed",
                        "CreationTime": 0,
                        "ModelPackageGroupName": "readmission-risk",
                        "ModelApprovalStatus": "Approved",
                    }
                ]
            },
            {
                "ModelPackageGroupName": "readmission-risk",
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        )
        sm.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "readmission-risk",
                "ModelPackageArn": arn,
                "CreationTime": 0,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {
                            "ContentType": "application/json",
                            "S3Uri": "s3://bucket/run/evaluation/model-quality.json",
                        }
                    }
                },
            },
            {"ModelPackageName": arn},
        )
        stats = json.dumps({"binary_classification_metrics": {"auc": {"value": 0.77}}}).encode()
        bucket.add_response(
            "get_object", {"Body": io.BytesIO(stats)}, {"Bucket": "bucket", "Key": "run/evaluation/model-quality.json"}
        )
        reference = decide_step.approved_from_sagemaker("readmission-risk", sagemaker, s3)
    assert reference == decide_step.ApprovedReference(arn, 0.77, "sagemaker", "its own test split (recorded)")
