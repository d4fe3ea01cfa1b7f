"""Step 8 in SageMaker (TrackRun) - record the run in MLflow, exactly as the local runner's `track` step does.

A thin entry point around `pipelines.tracking.record_run`: it reads what the earlier jobs wrote (the model
archive, the contract report with the dataset hash, evaluation, fairness, decision and card) and logs them to the
tracking URI in `MLFLOW_TRACKING_URI` - in the pipeline, the stack's SageMaker-managed MLflow server ARN, reached
through the VPC endpoint (the only step that runs without network isolation for this; its inputs are aggregate
reports and the model, never patient rows). It writes `tracking.json` (run id, model URI) for the registry entry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from clinops.exitcodes import ExitCode
from pipelines import tracking
from pipelines.bundle import read_bundle
from pipelines.errors import InputError
from pipelines.jobio import PROCESSING, model_dir, read_json, report_failure, write_json
from pipelines.settings import GateSettings, TrainingSettings
from pipelines.steps.decide import PENDING
from pipelines.steps.train import signature_frame

TRACKING_FILE = "tracking.json"


def tracking_uri_from(value: str | None) -> str:
    """The tracking URI given (argument, else the environment); a job with none cannot record its run."""
    uri = value or os.environ.get(tracking.TRACKING_URI_ENV, "")
    if not uri:
        raise InputError(
            f"no tracking URI: pass --tracking-uri or set {tracking.TRACKING_URI_ENV} "
            "(in the pipeline: the stack's MLflow tracking server ARN)"
        )
    return uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=Path, default=PROCESSING / "input", help="one directory per earlier output")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/tracking")
    parser.add_argument("--tracking-uri", help=f"default: ${tracking.TRACKING_URI_ENV}")
    parser.add_argument("--training", default="{}", help="the training settings as JSON (the job's hyperparameters)")
    parser.add_argument("--data-source", default="S3 extract")
    parser.add_argument("--run-name", default="sagemaker-pipeline", help="in the pipeline: its execution ID")
    args = parser.parse_args(argv)
    try:
        uri = tracking_uri_from(args.tracking_uri)
        bundle = read_bundle(model_dir(args.inputs / "model", scratch=tempfile.mkdtemp(prefix="model-")))
        decision = read_json(args.inputs / "decision")
        report = read_json(args.inputs / "report" / "contract-report.json")
        training = TrainingSettings(**json.loads(args.training))
    except (InputError, OSError, ValueError) as exc:
        report_failure(f"tracking: {exc}")
        print(exc, file=sys.stderr)
        return ExitCode.UNUSABLE_INPUT
    verdict = decision["verdict"]
    run_id, model_uri = tracking.record_run(
        uri,
        run_name=args.run_name,
        contract=bundle.contract,
        gate=GateSettings(**decision["gate"]),
        training=training,
        data_source=args.data_source,
        verdict=verdict,
        stopped_at=None if verdict == PENDING else "decide",
        dataset_sha256=report["dataset_sha256"],
        evaluation=read_json(args.inputs / "evaluation" / "evaluation.json"),
        fairness=read_json(args.inputs / "fairness"),
        decision=decision,
        timings={},  # a SageMaker execution records each step's duration itself
        run_dir=args.inputs,
        bundle_dir=bundle.path,
        model=bundle.model,
        signature_frame=signature_frame(bundle.contract),
    )
    write_json({"mlflow_run_id": run_id, "model_uri": model_uri or ""}, args.output / TRACKING_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
