"""Find the bundle `clinops serve --local MODEL` should serve.

MODEL is one of:
- a directory: a bundle (holds model.joblib), or a pipeline run directory (holds model/model.joblib);
- `models:/NAME/VERSION`, `models:/NAME/latest` or `models:/NAME@ALIAS`: a version in the MLflow registry.
  The pipeline logs each run's bundle under the run's `bundle/` artifacts; that directory is downloaded;
- a model name: the newest run of that model under OUT/pipeline/NAME/ that produced a bundle.

The tracking store is the pipeline's: `--tracking-uri`, else MLFLOW_TRACKING_URI, else sqlite in OUT/mlflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


class LocateError(Exception):
    """MODEL names nothing servable; the message says what was looked for and how to make one."""


@dataclass(frozen=True)
class Located:
    path: Path
    source: str


def _bundle_in(directory: Path) -> Path | None:
    for candidate in (directory, directory / "model"):
        if (candidate / "model.joblib").is_file():
            return candidate
    return None


def _verdict(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "decision" / "decision.json").read_text())["verdict"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def tracking_uri_for(out_dir: Path, tracking_uri: str | None) -> str:
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = (out_dir / "mlflow" / "mlflow.db").resolve()
    if not store.is_file():
        raise LocateError(
            f"no MLflow store at {store}; run `clinops pipeline run --local` first or pass --tracking-uri"
        )
    return f"sqlite:///{store}"


def from_registry(uri: str, tracking_uri: str, scratch: Path) -> Located:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow.exceptions import MlflowException

    reference = uri.removeprefix("models:/")
    name, _, version_ref = reference.partition("/")
    client = mlflow.MlflowClient(tracking_uri)
    try:
        if "@" in name:
            name, alias = name.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        elif version_ref in ("", "latest"):
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise LocateError(f"no registered versions of {name} in {tracking_uri}")
            version = max(versions, key=lambda v: int(v.version))
        else:
            version = client.get_model_version(name, version_ref)
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="bundle", dst_path=str(scratch), tracking_uri=tracking_uri
        )
    except MlflowException as exc:
        raise LocateError(f"{uri}: {str(exc).splitlines()[0]}") from None
    bundle = _bundle_in(Path(path))
    if bundle is None:
        raise LocateError(f"{uri}: run {version.run_id} has no bundle/ artifacts with model.joblib")
    tag = version.tags.get("approval_status", "no approval tag") if version.tags else "no approval tag"
    return Located(bundle, f"{name} version {version.version} in the MLflow registry ({tag})")


def newest_run(model_name: str, out_dir: Path) -> Located:
    runs = out_dir / "pipeline" / model_name
    candidates = sorted((d for d in runs.glob("*") if _bundle_in(d)), key=lambda d: d.name) if runs.is_dir() else []
    if not candidates:
        raise LocateError(
            f"no pipeline run of {model_name} with a model under {runs}; run `clinops pipeline run "
            f"--local --model {model_name}` or pass a bundle directory or models:/ URI"
        )
    run_dir = candidates[-1]
    return Located(_bundle_in(run_dir), f"newest local run {run_dir} (verdict: {_verdict(run_dir)})")  # type: ignore[arg-type]


def locate(model: str, *, out_dir: Path, tracking_uri: str | None, scratch: Path) -> Located:
    if model.startswith("models:/"):
        return from_registry(model, tracking_uri_for(out_dir, tracking_uri), scratch)
    directory = Path(model)
    if directory.is_dir():
        bundle = _bundle_in(directory)
        if bundle is None:
            raise LocateError(f"{directory} holds no model.joblib (nor model/model.joblib)")
        return Located(bundle, f"directory {bundle}")
    if os.sep in model or model.startswith("."):
        raise LocateError(f"{model} is not a directory")
    return newest_run(model, out_dir)
