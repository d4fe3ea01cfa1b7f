"""Load the bundle a training run wrote (`pipelines.bundle`) and prove it can score before /ping says healthy.

Checks, each failing with a reason /ping reports: the files exist; metadata is a format this server knows;
the contract is the one the model was trained under (fingerprint) and lists the same feature columns as the
metadata; the threshold is a probability; the estimator is a binary classifier; and a synthetic record,
read through the same validation as a request, scores to a probability.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.contracts import contract_fingerprint, load_contract
from serving.container.scoring import EstimatorScorer, Explainer, Scorer, build_explainer, compile_scorer
from serving.container.validation import RequestSchema

SUPPORTED_FORMATS = {1}
REQUIRED_FILES = ("model.joblib", "contract.yaml", "metadata.json")


class ArtifactError(Exception):
    """The bundle cannot be served; the message says why (file names and checks, never data)."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    threshold: float
    schema: RequestSchema
    scorer: Scorer
    scoring_note: str
    load_seconds: float
    warnings: tuple[str, ...] = ()
    explainer: Explainer | None = None  # None: requests asking for explanations are told why there are none
    explain_note: str = "no explanations"


def _reason(exc: BaseException) -> str:
    """The exception's type and first line: enough to act on, bounded in size (the bundle holds no patient data)."""
    first_line = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def _metadata(directory: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"metadata.json cannot be read: {type(exc).__name__}") from None
    if not isinstance(metadata, dict) or metadata.get("format_version") not in SUPPORTED_FORMATS:
        raise ArtifactError(f"metadata.json is not a bundle format this server knows ({sorted(SUPPORTED_FORMATS)})")
    for key in ("model_name", "model_version", "feature_columns", "operating_threshold"):
        if key not in metadata:
            raise ArtifactError(f"metadata.json has no {key}")
    threshold = metadata["operating_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise ArtifactError("metadata.json operating_threshold is not a probability in [0, 1]")
    return metadata


def _estimator(directory: Path) -> Any:
    import joblib  # the bundle's own serialisation; the bucket it comes from is the trust boundary

    try:
        model = joblib.load(directory / "model.joblib")
    except Exception as exc:  # unpickling can fail in any way; the reason is all /ping needs
        raise ArtifactError(f"model.joblib cannot be loaded: {_reason(exc)}") from None
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise ArtifactError("model.joblib is not a fitted classifier with predict_proba")
    return model


def load_served_model(directory: Path) -> ServedModel:
    started = time.perf_counter()
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ArtifactError(f"model directory {directory} lacks {', '.join(missing)}")
    metadata = _metadata(directory)
    try:
        contract = load_contract(directory / "contract.yaml")
    except Exception as exc:  # InputError with a readable message, or anything YAML/pydantic raise
        raise ArtifactError(f"contract.yaml is not a valid contract: {str(exc).splitlines()[0]}") from None
    if metadata["feature_columns"] != contract.feature_columns:
        raise ArtifactError("metadata.json and contract.yaml list different feature columns")
    recorded = metadata.get("contract_fingerprint")
    if recorded is not None and recorded != contract_fingerprint(contract):
        raise ArtifactError("contract.yaml was changed after training (fingerprint differs from metadata.json)")
    model = _estimator(directory)
    try:
        reference = EstimatorScorer(model, contract)
    except ValueError as exc:
        raise ArtifactError(f"model.joblib: {exc}") from None
    scorer, note = compile_scorer(model, contract, reference)
    explainer, explain_note = build_explainer(model, contract, reference, scorer)
    schema = RequestSchema(contract)
    _self_check(schema, scorer)
    return ServedModel(
        name=str(metadata["model_name"]),
        version=str(metadata["model_version"]),
        threshold=float(metadata["operating_threshold"]),
        schema=schema,
        scorer=scorer,
        scoring_note=note,
        load_seconds=round(time.perf_counter() - started, 3),
        warnings=_warnings(metadata),
        explainer=explainer,
        explain_note=explain_note,
    )


def _self_check(schema: RequestSchema, scorer: Scorer) -> None:
    features, problems = schema.from_records([schema.example_record()])
    if features is None:
        raise ArtifactError(f"the contract rejects its own example record: {problems[0].problem}")
    try:
        score = float(scorer.probabilities(features)[0])
    except Exception as exc:
        raise ArtifactError(f"self-check scoring failed: {_reason(exc)}") from None
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ArtifactError("self-check scoring returned a value that is not a probability")


def _warnings(metadata: dict[str, Any]) -> tuple[str, ...]:
    import sklearn

    trained_with = metadata.get("sklearn_version")
    if trained_with and trained_with != sklearn.__version__:
        return (f"trained with scikit-learn {trained_with}, serving with {sklearn.__version__}",)
    return ()
