"""Read the `baseline.json` the training pipeline stores next to each model (format: `pipelines/bundle.py`).

The baseline is computed once, at training time, by `pipelines.bundle.compute_baseline`; this module only
reads and checks it. A baseline holds no individual's value: outer bin edges are quantiles clipped in from the
training minimum and maximum, and ages are top-coded at 90 (HIPAA Safe Harbor) before anything is computed.
`baseline_from_frame` reuses the pipeline's own per-column code for the cases that have no
contract (benchmarks, ad-hoc comparisons), so there is exactly one definition of the bins.

Beside `baseline.json` a bundle holds `metadata.json` (model name and version, feature order: the column order
of CSV capture) and `contract.yaml` (ranges, categories and alternate units: contract-violation checks); both
are read when present.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.bundle import SAFE_HARBOR_AGE_CAP, _categorical_baseline, _numeric_baseline, is_age_column
from pipelines.contracts import Contract, load_contract
from pipelines.errors import InputError

SUPPORTED_FORMAT = 1


@dataclass(frozen=True)
class NumericBaseline:
    name: str
    edges: np.ndarray  # bins are [e(i-1), e(i)), the last one closed
    proportions: np.ndarray  # over non-missing values
    mean: float
    sd: float
    missing_fraction: float
    present_rows: float  # non-missing baseline values: the weight of the baseline in two-sample tests
    tail_share: float = 0.0  # training values beyond the outer edges (edges are clipped quantiles, not extremes)
    tail_below: float = 0.0  # ... below the first edge
    tail_above: float = 0.0  # ... above the last edge

    kind = "numeric"

    @property
    def usable(self) -> bool:
        return self.edges.size >= 2 and self.proportions.size == self.edges.size - 1


@dataclass(frozen=True)
class CategoricalBaseline:
    name: str
    levels: tuple[str, ...]
    proportions: np.ndarray
    missing_fraction: float
    present_rows: float

    kind = "categorical"

    @property
    def usable(self) -> bool:
        return len(self.levels) > 0 and self.present_rows > 0


FeatureBaseline = NumericBaseline | CategoricalBaseline


@dataclass(frozen=True)
class Baseline:
    features: dict[str, FeatureBaseline]
    score: NumericBaseline | None
    rows: int
    model_name: str = "model"
    model_version: str = "unknown"
    contract: Contract | None = None
    operating_threshold: float | None = None
    source: str = "<memory>"
    feature_order: list[str] = field(default_factory=list)
    attributions: dict[str, float] | None = None  # mean |contribution| per feature on the train split
    explainer: Any = None  # pipelines.explain.ModelExplainer when the bundle's model is beside the baseline
    attribution_note: str = "no attribution baseline"

    @property
    def columns(self) -> list[str]:
        """Column order of headerless CSV capture: the model's feature order."""
        return self.feature_order or list(self.features)


def _number(raw: Any, where: str, *, allow_none: bool = False) -> float:
    if raw is None and allow_none:
        return math.nan
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InputError(f"baseline {where} must be a number, got {raw!r}")
    return float(raw)


def _numeric(name: str, raw: dict[str, Any], rows: int, where: str) -> NumericBaseline:
    edges = np.asarray(raw.get("bin_edges", []), dtype=float)
    proportions = np.asarray(raw.get("proportions", []), dtype=float)
    if edges.size and (proportions.size != edges.size - 1 or np.any(np.diff(edges) < 0)):
        raise InputError(f"baseline {where}: bin_edges must increase and have one more entry than proportions")
    if proportions.size and (np.any(proportions < 0) or not math.isclose(proportions.sum(), 1.0, abs_tol=1e-6)):
        raise InputError(f"baseline {where}: proportions must be non-negative and sum to 1")
    missing = _number(raw.get("missing_fraction", 0.0), f"{where}.missing_fraction")
    return NumericBaseline(
        name=name,
        edges=edges,
        proportions=proportions,
        missing_fraction=missing,
        mean=_number(raw.get("mean"), f"{where}.mean", allow_none=True),
        sd=_number(raw.get("sd"), f"{where}.sd", allow_none=True),
        present_rows=max(rows * (1.0 - missing), 0.0),
        tail_share=(tail := _number(raw.get("tail_share", 0.0), f"{where}.tail_share")),
        # baselines written before the split: quantile edges leave about half of the tail on each side
        tail_below=_number(raw.get("tail_below", tail / 2), f"{where}.tail_below"),
        tail_above=_number(raw.get("tail_above", tail / 2), f"{where}.tail_above"),
    )


def _categorical(name: str, raw: dict[str, Any], rows: int, where: str) -> CategoricalBaseline:
    shares = raw.get("proportions")
    if not isinstance(shares, dict):
        raise InputError(f"baseline {where}.proportions must map each level to its share")
    missing = _number(raw.get("missing_fraction", 0.0), f"{where}.missing_fraction")
    proportions = np.asarray([_number(v, f"{where}.proportions.{k}") for k, v in shares.items()], dtype=float)
    return CategoricalBaseline(
        name=name,
        levels=tuple(str(k) for k in shares),
        proportions=proportions,
        missing_fraction=missing,
        present_rows=max(rows * (1.0 - missing), 0.0),
    )


def parse_baseline(
    doc: dict[str, Any],
    *,
    source: str = "<memory>",
    metadata: dict[str, Any] | None = None,
    contract: Contract | None = None,
) -> Baseline:
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), dict):
        raise InputError(f"baseline {source} has no 'features' mapping; is it a clinops baseline.json?")
    if doc.get("format_version", SUPPORTED_FORMAT) != SUPPORTED_FORMAT:
        raise InputError(f"baseline {source} has format_version {doc.get('format_version')}; this reader knows 1")
    rows = int(_number(doc.get("rows", 0), "rows"))
    if rows <= 0:
        raise InputError(f"baseline {source}: 'rows' must be a positive count of training rows")
    features: dict[str, FeatureBaseline] = {}
    for name, raw in doc["features"].items():
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind == "numeric":
            features[name] = _numeric(name, raw, rows, f"features.{name}")
        elif kind == "categorical":
            features[name] = _categorical(name, raw, rows, f"features.{name}")
        else:
            raise InputError(f"baseline {source}: features.{name}.kind must be 'numeric' or 'categorical'")
    score = None
    if isinstance(doc.get("score"), dict):
        # The score baseline comes from the calibration split; its size is stored as score.rows when the pipeline
        # records it, otherwise the training row count stands in (it makes score tests slightly less conservative).
        raw_score = {"missing_fraction": 0.0, **doc["score"]}
        score = _numeric("score", raw_score, int(raw_score.get("rows", rows)), "score")
    metadata = metadata or {}
    attributions = None
    if isinstance(doc.get("attributions"), dict):
        raw_means = doc["attributions"].get("mean_abs")
        if not isinstance(raw_means, dict):
            raise InputError(f"baseline {source}: attributions.mean_abs must map features to numbers")
        attributions = {str(k): _number(v, f"attributions.mean_abs.{k}") for k, v in raw_means.items()}
    return Baseline(
        features=features,
        score=score,
        rows=rows,
        model_name=str(metadata.get("model_name", "model")),
        model_version=str(metadata.get("model_version", "unknown")),
        contract=contract,
        operating_threshold=metadata.get("operating_threshold"),
        source=source,
        feature_order=[c for c in metadata.get("feature_columns", []) if c in features],
        attributions=attributions,
    )


def load_baseline(path: str | Path, contract_path: str | Path | None = None) -> Baseline:
    """Read `baseline.json` (a file, or a model bundle directory holding one) with its bundle neighbours."""
    path = Path(path)
    file = path / "baseline.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"baseline {file} does not exist; pass --baseline to a model bundle's baseline.json")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline {file} is not readable JSON: {exc}") from None
    metadata_file = file.parent / "metadata.json"
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    contract_file = Path(contract_path) if contract_path else file.parent / "contract.yaml"
    contract = load_contract(contract_file) if contract_file.is_file() else None
    baseline = parse_baseline(doc, source=str(file), metadata=metadata, contract=contract)
    model_file = file.parent / "model.joblib"
    if baseline.attributions is not None and contract is not None and model_file.is_file():
        explainer, note = _explainer(model_file, contract)
        return replace(baseline, explainer=explainer, attribution_note=note)
    if baseline.attributions is not None:
        note = "no model.joblib and contract.yaml beside the baseline to explain the window"
        return replace(baseline, attribution_note=note)
    return baseline


def _explainer(model_file: Path, contract: Contract) -> tuple[Any, str]:
    """The bundle's model as an exact explainer, or None with the reason (attribution drift is then skipped)."""
    import joblib  # the bundle's own serialisation; the artifacts bucket is the trust boundary

    from pipelines.explain import Unexplainable, explainer_for

    try:
        return explainer_for(joblib.load(model_file), contract.feature_columns), "exact TreeSHAP"
    except Unexplainable as exc:
        return None, f"the model cannot be explained exactly: {exc}"
    except Exception as exc:  # unpickling fails in many ways; feature drift still runs
        return None, f"model.joblib could not be loaded ({type(exc).__name__})"


def baseline_from_frame(
    frame: pd.DataFrame, numeric: list[str], categorical: dict[str, list[str]], scores: np.ndarray | None = None
) -> dict[str, Any]:
    """A baseline document for a frame without a contract, built by the pipeline's own per-column code."""
    features: dict[str, Any] = {}
    for name in frame.columns:
        if name in categorical:
            features[name] = _categorical_baseline(frame[name], categorical[name])
        elif name in numeric:
            age = is_age_column(str(name), None)
            features[name] = _numeric_baseline(frame[name], SAFE_HARBOR_AGE_CAP if age else None)
    doc: dict[str, Any] = {
        "format_version": SUPPORTED_FORMAT,
        "features_computed_on": "reference frame",
        "rows": len(frame),
        "features": features,
    }
    if scores is not None:
        score = _numeric_baseline(pd.Series(scores))
        doc["score"] = {
            "computed_on": "reference scores",
            "rows": len(scores),
            **{k: v for k, v in score.items() if k not in ("kind", "missing_fraction")},
        }
    return doc
