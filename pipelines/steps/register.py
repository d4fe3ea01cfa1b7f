"""Step 8 - register the candidate, always as PendingManualApproval, or refuse with the decision's reasons.

Locally the registry is MLflow's: a model version tagged `approval_status=PendingManualApproval` (MLflow has
no approval field; a human sets the tag to `Approved` after review). In the cloud the same step is a
SageMaker `RegisterModel` with `ModelApprovalStatus=PendingManualApproval` (see `pipelines.definitions.training`).
The current approved model is the newest version tagged `approval_status=Approved`; it is re-scored on this
run's test split when its inputs still fit, so the regression check compares like with like.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import PipelineStopped
from pipelines.metrics import auc_with_ci
from pipelines.settings import PENDING
from pipelines.steps.decide import ApprovedReference

log = logging.getLogger("clinops.pipeline.register")
APPROVAL_TAG = "approval_status"
APPROVED = "Approved"


def find_approved(mlflow_client: Any, model_name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        versions = mlflow_client.search_model_versions(f"name = '{model_name}' and tags.{APPROVAL_TAG} = '{APPROVED}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version), default=None)


def _load_registered(tracking_uri: str, model_name: str, version: str) -> Any:
    """Load a registered model with *our* skops allow-list, not the one stored inside the artifact (MLflow's own
    loader trusts the artifact's list, so it refuses to deserialize unless pickle loading is enabled globally)."""
    import mlflow.artifacts
    import skops.io

    from pipelines.tracking import SKOPS_TRUSTED_TYPES, scoped

    with scoped(tracking_uri):  # `models:/name/version` resolves through the process-wide registry URI
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model_name}/{version}", tracking_uri=tracking_uri
            )
        )
    return skops.io.load(local / "model.skops", trusted=SKOPS_TRUSTED_TYPES)


def approved_reference(
    mlflow_client: Any, tracking_uri: str, model_name: str, x_test: pd.DataFrame, y_test: np.ndarray
) -> ApprovedReference | None:
    version = find_approved(mlflow_client, model_name)
    if version is None:
        return None
    label = f"{model_name} v{version.version}"
    try:
        approved_model = _load_registered(tracking_uri, model_name, version.version)
        auc = auc_with_ci(y_test, approved_model.predict_proba(x_test)[:, 1])[0]
        return ApprovedReference(label, auc, "mlflow", "this run's test split")
    except Exception as exc:  # the approved model may predate a contract change; fall back to its record
        log.warning(
            "approved %s could not score this test split (%s); using its recorded AUC", label, type(exc).__name__
        )
        recorded = mlflow_client.get_run(version.run_id).data.metrics.get("test.candidate.auc")
        if recorded is None:
            return None
        return ApprovedReference(label, float(recorded), "mlflow", "its own test split (recorded)")


def register(
    mlflow_client: Any, model_name: str, model_uri: str, run_id: str, decision: dict[str, Any], tags: dict[str, str]
) -> str:
    """Create a registry version with PendingManualApproval; refuse unless the decision allows it."""
    if not decision.get("register") or decision.get("verdict") != PENDING:
        raise PipelineStopped("register", decision.get("reasons") or ["the decision did not allow registration"])
    try:
        mlflow_client.get_registered_model(model_name)
    except Exception:
        mlflow_client.create_registered_model(model_name, description="clinops clinical model (see model cards)")
    from pipelines.tracking import scoped

    with scoped(mlflow_client.tracking_uri):  # a `models:/m-...` source resolves through the process-wide URI
        version = mlflow_client.create_model_version(
            model_name, model_uri, run_id=run_id, tags={**tags, APPROVAL_TAG: PENDING}
        )
    log.info("registered %s version %s as %s", model_name, version.version, PENDING)
    return str(version.version)


def main(argv: list[str] | None = None) -> int:
    """Register an already-logged MLflow model from a finished run's decision file."""
    from pipelines import tracking
    from pipelines.jobio import read_json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-uri", required=True, help="e.g. models:/m-<id> from the logged run")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--decision", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        version = register(
            tracking.client(args.tracking_uri),
            args.model_name,
            args.model_uri,
            args.run_id,
            read_json(args.decision),
            {},
        )
    except PipelineStopped as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    print(f"{args.model_name} version {version}: {PENDING}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
