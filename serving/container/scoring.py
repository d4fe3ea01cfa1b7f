"""Scorers: a contract-ordered feature matrix (see `validation`) in, positive-class probabilities out.

`EstimatorScorer` hands scikit-learn a DataFrame shaped as the pipeline's `train.features()` builds it, so it
serves any estimator the bundle format allows; pandas and scikit-learn's input checks make it slow (~18 ms
for one row of the pipeline's model on the shared 2-core dev machine, ~23 ms for 100 rows).

`CompiledScorer` serves the pipeline's own model shape (sigmoid-calibrated HistGradientBoosting behind a
column transformer) without pandas: the column transformers become lookup tables that scikit-learn itself
fills in when probed at load time, and the trees are walked by `forest.Ensemble` (~0.13 ms for one row,
~1.7 ms for 100, same machine). It is served only after it has matched `EstimatorScorer` on a few hundred
synthetic rows (with missing values and every category) to 1e-9; otherwise the bundle is served by
`EstimatorScorer` and /ping says which path is in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit

from pipelines.contracts import Contract
from pipelines.explain import UNITS, Explanation, ModelExplainer, Unexplainable, explainer_for, member_parts
from serving.container.forest import Ensemble, Unsupported, compile_ensemble

EQUIVALENCE_TOLERANCE = 1e-9
EQUIVALENCE_ROWS = 256
EXPLANATION_CHECK_ROWS = 16  # rows whose contributions must add up to the served score before explaining
SINGLE_ROW_CHECKS = 16  # rows also scored one at a time: the Python tree walk (the batch takes scikit-learn's)
_SENTINEL_BASE = 1_000_003.25  # probe values no encoder would produce on its own


class Scorer(Protocol):
    path: str

    def probabilities(self, features: np.ndarray) -> np.ndarray: ...


def _category_arrays(contract: Contract) -> dict[int, np.ndarray]:
    """Contract column index -> its categories as objects, with None (missing) appended."""
    return {
        j: np.array([*contract.columns[name].categories, None], dtype=object)  # type: ignore[misc]
        for j, name in enumerate(contract.feature_columns)
        if contract.columns[name].dtype == "category"
    }


class EstimatorScorer:
    """Any fitted estimator with `predict_proba` on the pipeline's feature frame."""

    path = "scikit-learn"

    def __init__(self, model: Any, contract: Contract) -> None:
        positive = np.flatnonzero(np.asarray(model.classes_) == 1)
        if len(model.classes_) != 2 or positive.size != 1:
            raise ValueError(f"expected a binary classifier with classes 0 and 1, got {list(model.classes_)}")
        self.model, self.positive = model, int(positive[0])
        self.columns = contract.feature_columns
        self.categories = _category_arrays(contract)

    def frame(self, features: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, name in enumerate(self.columns):
            column = features[:, j]
            if j in self.categories:
                table = self.categories[j]
                data[name] = table[np.where(np.isnan(column), len(table) - 1, column).astype(np.intp)]
            else:
                data[name] = column
        return pd.DataFrame(data, columns=self.columns)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.frame(features))[:, self.positive], dtype=np.float64)


@dataclass(frozen=True)
class TreeInputs:
    """Where each contract column lands among the booster's inputs, and what each category becomes there."""

    width: int
    numeric_from: np.ndarray  # contract column indices
    numeric_to: np.ndarray  # booster input columns
    categorical: tuple[tuple[int, int, np.ndarray], ...]  # (contract column, booster column, code -> value)

    def build(self, features: np.ndarray) -> np.ndarray:
        x = np.empty((features.shape[0], self.width), dtype=np.float64)
        x[:, self.numeric_to] = features[:, self.numeric_from]
        for source, target, table in self.categorical:
            codes = features[:, source]
            x[:, target] = table[np.where(np.isnan(codes), len(table) - 1, codes).astype(np.intp)]
        return x


@dataclass(frozen=True)
class CalibratedTrees:
    inputs: TreeInputs
    ensemble: Ensemble
    slope: float  # scikit-learn's _SigmoidCalibration: p = expit(-(a * f + b))
    intercept: float


class CompiledScorer:
    path = "compiled"

    def __init__(self, members: list[CalibratedTrees]) -> None:
        self.members = members

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        total = np.zeros(features.shape[0])
        for member in self.members:
            raw = member.ensemble.raw(member.inputs.build(features))
            total += expit(-(member.slope * raw + member.intercept))
        return total / len(self.members)


def _probe_inputs(to_booster: Callable[[np.ndarray], np.ndarray], contract: Contract) -> TreeInputs:
    """Ask the fitted transformers where each column goes: a base row, then one change per column or category."""
    categories = _category_arrays(contract)
    count = len(contract.feature_columns)
    base = np.array([0.0 if j in categories else _SENTINEL_BASE + 7 * j for j in range(count)])
    probes = [base]
    index: dict[tuple[int, str | int], int] = {}  # (column, "missing" or category code) -> probe row
    for j, table in categories.items():
        index[(j, "missing")] = len(probes)
        probes.append(np.where(np.arange(count) == j, np.nan, base))
        for code in range(1, len(table) - 1):
            index[(j, code)] = len(probes)
            probes.append(np.where(np.arange(count) == j, float(code), base))
    out = np.asarray(to_booster(np.vstack(probes)), dtype=np.float64)
    if out.ndim != 2 or np.isnan(out[0]).any():
        raise Unsupported("the transformers do not map a complete row to a complete row")
    numeric_from, numeric_to, categorical, used = [], [], [], []
    for j in range(count):
        if j in categories:
            row = out[index[(j, "missing")]]
            changed = np.flatnonzero(np.isnan(row) & ~np.isnan(out[0]))
            if changed.size != 1 or not np.array_equal(np.delete(row, changed), np.delete(out[0], changed)):
                raise Unsupported(f"column {contract.feature_columns[j]} does not map to one booster input")
            target = int(changed[0])
            values = [out[0, target]] + [out[index[(j, c)], target] for c in range(1, len(categories[j]) - 1)]
            categorical.append((j, target, np.array([*values, math.nan])))
        else:
            matches = np.flatnonzero(out[0] == base[j])
            if matches.size != 1:
                raise Unsupported(f"column {contract.feature_columns[j]} is not passed through unchanged")
            target = int(matches[0])
            numeric_from.append(j)
            numeric_to.append(target)
        used.append(target)
    if sorted(used) != list(range(out.shape[1])):
        raise Unsupported("the booster reads inputs that are not one contract column each")
    return TreeInputs(
        out.shape[1], np.array(numeric_from, dtype=np.intp), np.array(numeric_to, dtype=np.intp), tuple(categorical)
    )


def _member(calibrated: Any, contract: Contract, frame: Callable[[np.ndarray], pd.DataFrame]) -> CalibratedTrees:
    try:
        steps, booster, calibrator = member_parts(calibrated)  # as the explainer unwraps it
    except Unexplainable as exc:
        raise Unsupported(str(exc)) from exc

    def to_booster(features: np.ndarray) -> np.ndarray:
        x = frame(features)
        x = steps.transform(x) if steps is not None else x
        return booster._preprocessor.transform(x) if booster._preprocessor is not None else np.asarray(x, float)

    return CalibratedTrees(
        _probe_inputs(to_booster, contract), compile_ensemble(booster), float(calibrator.a_), float(calibrator.b_)
    )


def synthetic_features(contract: Contract, rows: int, seed: int = 0) -> np.ndarray:
    """Contract-space rows: numbers across each range, every category, ~15% missing in every column."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in contract.feature_columns:
        spec = contract.columns[name]
        if spec.dtype == "category":
            column = rng.integers(0, len(spec.categories or []), rows).astype(np.float64)
        elif spec.dtype == "boolean":
            column = rng.integers(0, 2, rows).astype(np.float64)
        else:
            low, high = spec.range if spec.range is not None else (-1000.0, 1000.0)
            column = rng.uniform(low, high, rows)
            column = np.round(column) if spec.dtype == "integer" else column
        column[rng.random(rows) < 0.15] = np.nan
        columns.append(column)
    return np.column_stack(columns)


def compile_scorer(model: Any, contract: Contract, reference: EstimatorScorer) -> tuple[Scorer, str]:
    """The compiled scorer if it reproduces `reference`, else `reference`; with a note saying why."""
    from sklearn.calibration import CalibratedClassifierCV

    if not isinstance(model, CalibratedClassifierCV):
        return reference, f"{type(model).__name__} is served through scikit-learn"
    try:
        compiled = CompiledScorer([_member(c, contract, reference.frame) for c in model.calibrated_classifiers_])
    except (Unsupported, AttributeError, IndexError, TypeError, ValueError) as exc:
        return reference, f"not compiled ({type(exc).__name__}: {exc}); served through scikit-learn"
    features = synthetic_features(contract, EQUIVALENCE_ROWS)
    expected = reference.probabilities(features)
    batch = compiled.probabilities(features)
    single = np.concatenate([compiled.probabilities(features[i : i + 1]) for i in range(SINGLE_ROW_CHECKS)])
    gap = max(float(np.max(np.abs(batch - expected))), float(np.max(np.abs(single - expected[:SINGLE_ROW_CHECKS]))))
    if not gap <= EQUIVALENCE_TOLERANCE:  # also catches NaN
        return reference, f"compiled scores differ from scikit-learn by {gap:.2e}; served through scikit-learn"
    return compiled, f"compiled (matches scikit-learn within {EQUIVALENCE_TOLERANCE:g} on {EQUIVALENCE_ROWS} rows)"


@dataclass(frozen=True)
class Explainer:
    """Each row's largest contributions in calibrated log-odds (`pipelines.explain`), by contract feature name.
    With the compiled scorer's input tables the trees' inputs are built without pandas (the transformers cost
    ~20x the contributions themselves); otherwise through the pipeline's own transformers."""

    model: ModelExplainer
    frame: Callable[[np.ndarray], pd.DataFrame]
    inputs: TreeInputs | None = None
    units = UNITS

    def explain(self, features: np.ndarray) -> Explanation:
        if self.inputs is not None:
            return self.model.explain_tree_inputs(self.inputs.build(features))
        return self.model.explain(self.frame(features))

    def top(self, features: np.ndarray, count: int) -> list[list[dict[str, Any]]]:
        explanation = self.explain(features)
        return [explanation.top(row, count) for row in range(features.shape[0])]


def _same_columns(inputs: TreeInputs, model: ModelExplainer) -> bool:
    """Do the scorer's tables and the explainer agree on which contract column feeds each tree input?"""
    targets = dict(zip(inputs.numeric_from.tolist(), inputs.numeric_to.tolist(), strict=True))
    targets.update({source: target for source, target, _ in inputs.categorical})
    return all(int(model.to_contract[target]) == source for source, target in targets.items())


def build_explainer(
    model: Any, contract: Contract, reference: EstimatorScorer, scorer: Scorer | None = None
) -> tuple[Explainer | None, str]:
    """The exact explainer if its contributions add up to the served probabilities, else None; with a note."""
    try:
        exact = explainer_for(model, contract.feature_columns)
    except (Unexplainable, AttributeError, TypeError, ValueError) as exc:
        return None, f"no explanations ({type(exc).__name__}: {exc})"
    inputs = None
    if isinstance(scorer, CompiledScorer) and len(scorer.members) == 1:
        if not _same_columns(scorer.members[0].inputs, exact):
            return None, "no explanations: the scorer and the explainer disagree on the trees' input columns"
        inputs = scorer.members[0].inputs
    explainer = Explainer(exact, reference.frame, inputs)
    features = synthetic_features(contract, EXPLANATION_CHECK_ROWS, seed=1)
    explained = expit(explainer.explain(features).log_odds())
    gap = float(np.max(np.abs(explained - reference.probabilities(features))))
    if not gap <= EQUIVALENCE_TOLERANCE:  # also catches NaN
        return None, f"no explanations: contributions miss the served probabilities by {gap:.2e}"
    return explainer, (
        f"exact TreeSHAP ({len(exact.shap.trees)} trees; contributions add up to the served "
        f"probability within {EQUIVALENCE_TOLERANCE:g} on {EXPLANATION_CHECK_ROWS} rows)"
    )
