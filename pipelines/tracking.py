"""MLflow tracking for pipeline runs: every run is recorded, including those a step stopped.

What goes in is chosen field by field, never by dumping a table: parameters from the settings and the
contract, metrics from evaluation and fairness, tags with the verdict and lineage, and artifacts that are
aggregate reports. The model is logged with a signature (column names and types) but no input example, so
no patient-level row ever reaches the tracking store. The embedded default is a sqlite store in `out/mlflow`.

`record_run` is the one recipe for what a pipeline run logs: the local runner (`pipelines.local`) calls it with a
sqlite URI, the TrackRun job (`pipelines.steps.track`) with the stack's SageMaker-managed server, whose ARN is the
tracking URI (`MLFLOW_TRACKING_URI`): the `sagemaker-mlflow` plugin maps an `arn:...:mlflow-tracking-server/...`
URI to `https://<region>.experiments.sagemaker.aws` (reached through the MLflow VPC endpoint) and signs each call
with SigV4 as service `sagemaker-mlflow`; artifacts go straight to the server's S3 artifact store.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.settings import GateSettings, TrainingSettings, describe_relaxations

if TYPE_CHECKING:
    from pipelines.contracts import Contract

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines would break the progress display

# skops refuses to load types it cannot vouch for. These are the ones this pipeline's own estimators contain
# (reported by skops.io.get_untrusted_types on a trained candidate); the model was produced by this code.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")
# The run's aggregate reports, logged under these artifact paths (one directory each; the model bundle as "bundle").
REPORT_ARTIFACTS = ("report", "evaluation", "fairness", "decision", "card")
# Where the tracking URI comes from in a job (the definition sets it to the stack's server ARN); MLflow reads it too.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_SERVER_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[A-Za-z0-9-]+$")
_warm: dict[str, threading.Thread] = {}
_prepared: set[str] = set()


def default_tracking_uri(out_dir: Path) -> str:
    directory = (out_dir / "mlflow").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def artifact_root(tracking_uri: str) -> str:
    """Artifacts live beside a sqlite store (MLflow would otherwise default to ./mlruns in the CWD)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return ""


def _pip_requirements() -> list[str]:
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", "skops", "pandas", "numpy", "scipy"]


def _rehearse_model_save() -> None:
    """The first model save in a process spends seconds importing skops and indexing every installed package
    (MLflow checks the pip requirements against the environment); pay that once, on a toy model."""
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    with tempfile.TemporaryDirectory() as scratch:
        toy = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
        mlflow.sklearn.save_model(toy, f"{scratch}/toy", pip_requirements=_pip_requirements())


def _prepare(tracking_uri: str) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)  # creates the schema on first use
    if not _prepared:
        _rehearse_model_save()
    _prepared.add(tracking_uri)


def warm_up(tracking_uri: str) -> None:
    """Import MLflow, create the store and rehearse a model save on a background thread, while the CPU-bound
    steps run, so tracking at the end of the run does not pay for them."""
    if tracking_uri not in _prepared and tracking_uri not in _warm:
        _warm[tracking_uri] = threading.Thread(target=_prepare, args=(tracking_uri,), daemon=True)
        _warm[tracking_uri].start()


def ready(tracking_uri: str) -> None:
    thread = _warm.pop(tracking_uri, None)
    if thread is not None:
        thread.join()
    if tracking_uri not in _prepared:
        _prepare(tracking_uri)


@contextlib.contextmanager
def scoped(tracking_uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model) and the registry's resolution of a `models:/m-...` source read a
    process-wide URI, which MLflow mirrors into os.environ["MLFLOW_TRACKING_URI"]. Set it only for the call and
    restore both afterwards, so nothing else in the process (another run, a test) inherits this store."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(tracking_uri):
        yield


def client(tracking_uri: str) -> Any:
    import mlflow

    ready(tracking_uri)
    return mlflow.MlflowClient(tracking_uri)


def experiment_id(tracking_uri: str, name: str) -> str:
    mlflow_client = client(tracking_uri)
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow_client.create_experiment(name, artifact_location=artifact_root(tracking_uri) or None)


def metric_name(*parts: str) -> str:
    return ".".join(_METRIC_NAME.sub("_", p) for p in parts)


def flat_metrics(
    evaluation: dict[str, Any] | None, fairness: dict[str, Any] | None, timings: dict[str, float]
) -> dict[str, float]:
    metrics: dict[str, float] = {metric_name("time", step, "seconds"): t for step, t in timings.items()}
    if evaluation:
        for model in ("candidate", "comparator"):
            result = evaluation[model]
            for key in ("auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece"):
                metrics[metric_name("test", model, key)] = result[key]
            for key in ("sensitivity", "specificity", "ppv", "npv", "alert_rate"):
                metrics[metric_name("test", model, "at_threshold", key)] = result["at_threshold"][key]
        metrics["operating_threshold"] = evaluation["operating_threshold"]
    if fairness:
        for attribute, result in fairness["attributes"].items():
            for gap_name, gap in result["gaps"].items():
                if gap:
                    metrics[metric_name("fairness", attribute, f"{gap_name}_gap")] = gap["value"]
            for group, row in result["groups"].items():
                if row.get("status") == "ok":
                    metrics[metric_name("fairness", attribute, group, "auc")] = row["auc"]
    return {k: float(v) for k, v in metrics.items() if v is not None and v == v}


def log_run(
    tracking_uri: str,
    experiment: str,
    *,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifact_dirs: dict[str, Path],
    model: Any = None,
    signature_frame: Any = None,
    status: str = "FINISHED",
) -> tuple[str, str | None]:
    """Record one run; returns (run_id, logged model URI or None). `status` is how the run ended: KILLED for an
    interrupted run and FAILED for a crashed one, so neither reads as a finished run in MLflow."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model_uri = None
    with (
        scoped(tracking_uri),
        mlflow.start_run(experiment_id=experiment_id(tracking_uri, experiment), run_name=run_name) as run,
    ):
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        for name, directory in artifact_dirs.items():
            if directory.is_dir():
                mlflow.log_artifacts(str(directory), artifact_path=name)
        if model is not None:
            sample = signature_frame.head(50)
            signature = infer_signature(sample, model.predict_proba(sample))
            info = mlflow.sklearn.log_model(  # skops (the default): loading it cannot run arbitrary code
                model,
                name="model",
                signature=signature,
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                pip_requirements=_pip_requirements(),
            )
            model_uri = info.model_uri
        run_id = run.info.run_id
    if status != "FINISHED":
        client(tracking_uri).set_terminated(run_id, status=status)
    return run_id, model_uri


def is_managed_server(tracking_uri: str) -> bool:
    """A SageMaker-managed MLflow tracking server ARN (resolved and signed by the sagemaker-mlflow plugin)."""
    return bool(_SERVER_ARN.match(tracking_uri))


def run_params(gate: GateSettings, training: TrainingSettings, contract: Contract, data_source: str) -> dict[str, Any]:
    """What a run was configured with: every gate limit and training knob, the contract and the data's origin."""
    return {
        **{f"gate.{k}": v for k, v in gate.model_dump().items()},
        **{f"training.{k}": v for k, v in training.model_dump().items()},
        "contract.name": contract.name,
        "contract.version": contract.version,
        "features": ",".join(contract.feature_columns),
        "data_source": data_source,
    }


def run_tags(
    *,
    verdict: str,
    stopped_at: str | None,
    dataset_sha256: str,
    contract: Contract,
    decision: dict[str, Any] | None,
) -> dict[str, str]:
    """How the run ended and its lineage: the verdict, where it stopped, the dataset hash, any relaxed gate."""
    tags = {
        "verdict": verdict,
        "stopped_at": stopped_at or "",
        "dataset_sha256": dataset_sha256,
        "contract_version": contract.version,
        "model_name": contract.name,
    }
    if decision is not None:
        tags["gate_relaxed"] = describe_relaxations(decision["relaxed_limits"], decision["relaxed_by"]) or "no"
    return tags


def record_run(
    tracking_uri: str,
    *,
    run_name: str,
    contract: Contract,
    gate: GateSettings,
    training: TrainingSettings,
    data_source: str,
    verdict: str,
    stopped_at: str | None,
    dataset_sha256: str,
    evaluation: dict[str, Any] | None,
    fairness: dict[str, Any] | None,
    decision: dict[str, Any] | None,
    timings: dict[str, float],
    run_dir: Path,
    bundle_dir: Path | None,
    model: Any = None,
    signature_frame: Any = None,
    status: str = "FINISHED",
) -> tuple[str, str | None]:
    """Log one pipeline run, the same way wherever it ran: parameters, metrics, tags (verdict, dataset hash),
    the aggregate reports under `run_dir/<name>` (the card among them), the model bundle and the model itself.
    Returns (run_id, logged model URI or None)."""
    artifact_dirs = {name: run_dir / name for name in REPORT_ARTIFACTS}
    if bundle_dir is not None:
        artifact_dirs["bundle"] = bundle_dir
    return log_run(
        tracking_uri,
        contract.name,
        run_name=run_name,
        params=run_params(gate, training, contract, data_source),
        metrics=flat_metrics(evaluation, fairness, timings),
        tags=run_tags(
            verdict=verdict,
            stopped_at=stopped_at,
            dataset_sha256=dataset_sha256,
            contract=contract,
            decision=decision,
        ),
        artifact_dirs=artifact_dirs,
        model=model,
        signature_frame=signature_frame,
        status=status,
    )
