"""Exact contributions for the tree model: local accuracy, agreement with Shapley values computed from their
definition, and the properties a wrong implementation would break (unused features, names, calibration)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.explain import ModelExplainer, Unexplainable, explainer_for
from pipelines.steps import train as train_step

# contract order on purpose unlike the booster's (categories first): names must follow their columns
COLUMNS = ["age", "ward", "lactate", "unused", "sodium", "triage"]
WARDS = ["icu", "medical", "surgical", "oncology", "never_seen"]  # the last never occurs in training
TRIAGE = ["1", "2", "3"]


def _frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 90, rows)
    ward = rng.choice(WARDS[:-1], rows).astype(object)
    lactate = rng.gamma(2.0, 1.0, rows)
    sodium = rng.normal(140, 4, rows)
    triage = rng.choice(TRIAGE, rows).astype(object)
    logits = (
        0.04 * (age - 55) + 0.9 * (lactate - 2) + 1.2 * (ward == "icu") - 0.1 * (sodium - 140) + 0.5 * (triage == "1")
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
    for column in (age, lactate, sodium):
        column[rng.random(rows) < 0.15] = np.nan
    ward[rng.random(rows) < 0.1] = None
    frame = pd.DataFrame(
        {"age": age, "ward": ward, "lactate": lactate, "unused": 1.0, "sodium": sodium, "triage": triage},
        columns=COLUMNS,
    )
    return frame, label


def _calibrated(max_iter: int, max_leaf_nodes: int, seed: int = 0) -> CalibratedClassifierCV:
    categorical, numeric = ["ward", "triage"], ["age", "lactate", "unused", "sodium"]
    encoder = OrdinalEncoder(
        categories=[WARDS, TRIAGE],
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        dtype=np.float64,
    )
    prepare = ColumnTransformer(
        [("categorical", encoder, categorical), ("numeric", "passthrough", numeric)], verbose_feature_names_out=False
    )
    booster = HistGradientBoostingClassifier(
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=20,
        learning_rate=0.3,
        categorical_features=[True, True, False, False, False, False],
        early_stopping=False,
        random_state=seed,
    )
    x, y = _frame(3000, seed)
    fitted = Pipeline([("prepare", prepare), ("booster", booster)]).fit(x, y)
    x_cal, y_cal = _frame(1500, seed + 1)
    return CalibratedClassifierCV(FrozenEstimator(fitted), method="sigmoid").fit(x_cal, y_cal)


def _booster(model: CalibratedClassifierCV) -> Pipeline:
    return model.calibrated_classifiers_[0].estimator.estimator


@pytest.fixture(scope="module")
def small() -> tuple[CalibratedClassifierCV, ModelExplainer]:
    model = _calibrated(max_iter=6, max_leaf_nodes=6)
    return model, explainer_for(model, COLUMNS)


def _edge_rows() -> pd.DataFrame:
    """Rows routed by every rule: NaN numbers, a missing ward, a ward never seen in training, extremes."""
    frame, _ = _frame(12, seed=99)
    frame.loc[0, ["age", "lactate", "sodium"]] = np.nan
    frame.loc[1, "ward"] = None
    frame.loc[2, "ward"] = "never_seen"
    frame.loc[3, ["lactate", "age"]] = [40.0, 120.0]
    frame.loc[4, ["ward", "lactate"]] = [None, np.nan]
    return frame


# --- the definition, written independently of pipelines.explain -------------------------------------------


def _in_bitset(bitset: np.ndarray, code: int) -> bool:
    return bool((int(bitset[code // 32]) >> (code % 32)) & 1)


def _route_left(node: Any, predictor: Any, known: np.ndarray, value: float) -> bool:
    if math.isnan(value):
        return bool(node["missing_go_to_left"])
    if node["is_categorical"]:
        code = int(value)
        if code < 0 or code >= 256 or not _in_bitset(known, code):
            return bool(node["missing_go_to_left"])  # unseen categories go where missing values go
        return _in_bitset(predictor.raw_left_cat_bitsets[node["bitset_idx"]], code)
    return value <= node["num_threshold"]


def _conditional(booster: HistGradientBoostingClassifier, row: np.ndarray, known_set: set[int]) -> float:
    """E[f(x) | x_S]: follow the row on features in S, average both children by training rows elsewhere."""
    known_bitsets, feature_to_bitset = booster._bin_mapper.make_known_categories_bitsets()
    total = float(np.ravel(booster._baseline_prediction)[0])
    for (predictor,) in booster._predictors:
        nodes = predictor.nodes

        def expect(i: int, nodes: Any = nodes, predictor: Any = predictor) -> float:
            node = nodes[i]
            if node["is_leaf"]:
                return float(node["value"])
            feature = int(node["feature_idx"])
            left, right = int(node["left"]), int(node["right"])
            if feature in known_set:
                known = known_bitsets[feature_to_bitset[feature]] if node["is_categorical"] else None
                return expect(left if _route_left(node, predictor, known, row[feature]) else right)
            n_left, n_right = float(nodes[left]["count"]), float(nodes[right]["count"])
            return (n_left * expect(left) + n_right * expect(right)) / (n_left + n_right)

        total += expect(0)
    return total


def _brute_force_shapley(booster: HistGradientBoostingClassifier, row: np.ndarray) -> np.ndarray:
    width = len(row)
    value = {
        subset: _conditional(booster, row, set(subset))
        for size in range(width + 1)
        for subset in itertools.combinations(range(width), size)
    }
    phi = np.zeros(width)
    for i in range(width):
        others = [j for j in range(width) if j != i]
        for size in range(width):
            weight = math.factorial(size) * math.factorial(width - size - 1) / math.factorial(width)
            for subset in itertools.combinations(others, size):
                phi[i] += weight * (value[tuple(sorted((*subset, i)))] - value[subset])
    return phi


# --- tests --------------------------------------------------------------------------------------------------


def test_matches_shapley_values_from_their_definition(small: tuple[CalibratedClassifierCV, ModelExplainer]) -> None:
    model, explainer = small
    booster = _booster(model)[-1]
    x = explainer.tree_inputs(_edge_rows())
    assert x.shape[1] == 6 and np.isnan(x).any()
    used = {int(n["feature_idx"]) for (p,) in booster._predictors for n in p.nodes if not n["is_leaf"]}
    assert len(used) >= 4, "the small model should split on most features"
    fast = explainer.shap.contributions(x)  # all leaves at once (served)
    recursion = explainer.shap.reference_contributions(x)  # Algorithm 2 as published
    for r in range(len(x)):
        exact = _brute_force_shapley(booster, x[r])
        np.testing.assert_allclose(fast[r], exact, rtol=0, atol=1e-12)
        np.testing.assert_allclose(recursion[r], exact, rtol=0, atol=1e-12)
    # and the empty set's value is the expected value
    assert explainer.shap.expected_value == pytest.approx(_conditional(booster, x[0], set()), abs=1e-12)


def test_local_accuracy_on_raw_and_calibrated_log_odds() -> None:
    bigger = _calibrated(max_iter=40, max_leaf_nodes=15, seed=3)
    explainer = explainer_for(bigger, COLUMNS)
    frame = pd.concat([_edge_rows(), _frame(200, seed=5)[0]], ignore_index=True)
    raw, expected = explainer.raw(frame)
    decision = _booster(bigger).decision_function(frame)
    np.testing.assert_allclose(expected + raw.sum(axis=1), decision, rtol=0, atol=1e-9)
    recursion = explainer.shap.reference_contributions(explainer.tree_inputs(frame))
    np.testing.assert_allclose(expected + recursion.sum(axis=1), decision, rtol=0, atol=1e-9)
    explanation = explainer.explain(frame)
    calibrated = logit(bigger.predict_proba(frame)[:, 1])
    np.testing.assert_allclose(explanation.log_odds(), calibrated, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.contributions, raw * explainer.scale, rtol=0, atol=0)
    assert explainer.scale == -bigger.calibrated_classifiers_[0].calibrators[0].a_


def test_unused_feature_gets_exactly_zero_and_names_follow_columns(
    small: tuple[CalibratedClassifierCV, ModelExplainer],
) -> None:
    _, explainer = small
    frame = _edge_rows()
    explanation = explainer.explain(frame)
    assert explanation.features == tuple(COLUMNS)
    assert np.all(explanation.contributions[:, COLUMNS.index("unused")] == 0.0)
    # a huge lactate is the strongest reason in the data-generating process: it must lead under its own name
    top = explanation.top(3, 2)
    assert top[0]["feature"] == "lactate" and top[0]["contribution"] > 0
    assert set(top[0]) == {"feature", "contribution"}  # names and contributions only, never values
    magnitudes = [abs(item["contribution"]) for item in explanation.top(0, 6)]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_a_changed_row_changes_only_the_features_the_trees_read(
    small: tuple[CalibratedClassifierCV, ModelExplainer],
) -> None:
    """Symmetry of a different kind: two rows that differ only in the unused column explain identically."""
    _, explainer = small
    frame = _edge_rows().iloc[:3].copy()
    changed = frame.copy()
    changed["unused"] = 42.0
    np.testing.assert_array_equal(explainer.explain(frame).contributions, explainer.explain(changed).contributions)


def test_trees_without_a_split_explain_nothing_and_still_add_up() -> None:
    x, y = _frame(100, seed=6)
    x = x.drop(columns=["ward", "triage"])
    stumps = HistGradientBoostingClassifier(max_iter=3, min_samples_leaf=60, early_stopping=False).fit(x, y)
    assert all(p.nodes["is_leaf"].all() for (p,) in stumps._predictors), "no tree may split"
    model = CalibratedClassifierCV(FrozenEstimator(stumps), method="sigmoid").fit(x, y)
    explanation = explainer_for(model, list(x.columns)).explain(x.iloc[:5])
    assert np.all(explanation.contributions == 0.0)
    np.testing.assert_allclose(explanation.log_odds(), logit(model.predict_proba(x.iloc[:5])[:, 1]), atol=1e-9)


def test_shapes_it_cannot_explain_exactly_are_refused() -> None:
    x, y = _frame(600, seed=1)
    x = x.drop(columns=["ward", "triage"])
    ensemble = CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=5), method="sigmoid", cv=2).fit(x, y)
    with pytest.raises(Unexplainable, match="2 calibrated members"):
        explainer_for(ensemble, list(x.columns))
    isotonic = CalibratedClassifierCV(
        FrozenEstimator(HistGradientBoostingClassifier(max_iter=5).fit(x, y)), method="isotonic"
    ).fit(x, y)
    with pytest.raises(Unexplainable, match="isotonic"):
        explainer_for(isotonic, list(x.columns))
    frozen = CalibratedClassifierCV(
        FrozenEstimator(HistGradientBoostingClassifier(max_iter=5).fit(x, y)), method="sigmoid"
    ).fit(x, y)
    with pytest.raises(Unexplainable, match="contract's feature columns"):
        explainer_for(frozen, [*x.columns, "extra"])
    assert explainer_for(frozen, list(x.columns)).features == tuple(x.columns)


@pytest.fixture(scope="module")
def pipeline_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The pipeline's own model (validate -> split -> train -> save) on a small synthetic extract."""
    from pipelines.bundle import read_bundle
    from tests.pipelines.bundles import train_pipeline_bundle

    work = tmp_path_factory.mktemp("explain-bundle")
    trained = train_pipeline_bundle(work / "model", work, rows=2500, seed=4, max_iter=30)
    bundle = read_bundle(trained.directory)
    return bundle, train_step.features(trained.splits.calibration, bundle.contract).iloc[:60]


def test_the_pipeline_model_explains_exactly_under_contract_names(pipeline_bundle: Any) -> None:
    bundle, frame = pipeline_bundle
    contract = bundle.contract
    assert frame.isna().any().any(), "the synthetic data has missing values"
    explanation = explainer_for(bundle.model, contract.feature_columns).explain(frame)
    assert explanation.features == tuple(contract.feature_columns)
    np.testing.assert_allclose(
        explanation.log_odds(), logit(bundle.model.predict_proba(frame)[:, 1]), rtol=0, atol=1e-9
    )


def test_the_bundle_baseline_holds_mean_abs_contributions_of_the_train_split(pipeline_bundle: Any) -> None:
    bundle, _ = pipeline_bundle
    attributions = bundle.baseline["attributions"]
    assert attributions["computed_on"] == "train split" and attributions["units"] == "calibrated log-odds"
    assert attributions["rows"] == min(bundle.baseline["rows"], 1000)
    assert set(attributions["mean_abs"]) == set(bundle.contract.feature_columns)
    assert all(v >= 0 for v in attributions["mean_abs"].values()) and max(attributions["mean_abs"].values()) > 0
    explainer = explainer_for(bundle.model, bundle.contract.feature_columns)
    assert attributions["expected_value"] == pytest.approx(explainer.expected_value, abs=1e-12)


def test_the_card_shows_global_importance_and_synthetic_examples(pipeline_bundle: Any) -> None:
    from pipelines.steps import card as card_step
    from pipelines.steps.card_html import _explanations_html

    bundle, _ = pipeline_bundle
    section = card_step.explanation_section(bundle.model, bundle.contract, bundle.baseline)
    assert section["available"] and section["units"] == "calibrated log-odds"
    values = [v for _, v in section["global"]["mean_abs"]]
    assert values == sorted(values, reverse=True) and len(values) == len(bundle.contract.feature_columns)
    assert len(section["examples"]) == card_step.EXAMPLE_ROWS
    for example in section["examples"]:
        assert 0 < example["risk"] < 1 and len(example["top"]) == card_step.EXAMPLE_FACTORS
        assert all(set(t) == {"feature", "contribution"} for t in example["top"])  # names, never values
    markdown = "\n".join(card_step.explanation_lines(section))
    assert "## Why the model scores as it does" in markdown and "SYNTHETIC example patients" in markdown
    top_feature = section["global"]["mean_abs"][0][0]
    assert f"| {top_feature} |" in markdown
    assert any(" raises risk" in line or " lowers risk" in line for line in markdown.splitlines())
    page = _explanations_html(section)
    assert "id='explanations'" in page and page.count("td class='bar'") == len(values) and "<script" not in page


def test_the_card_says_plainly_when_a_model_cannot_be_explained() -> None:
    from pipelines.steps import card as card_step
    from pipelines.steps.card_html import _explanations_html

    x, y = _frame(400, seed=2)
    x = x.drop(columns=["ward", "triage"])
    isotonic = CalibratedClassifierCV(
        FrozenEstimator(HistGradientBoostingClassifier(max_iter=5).fit(x, y)), method="isotonic"
    ).fit(x, y)
    contract = load_contract(builtin_contract_path("readmission-risk"))
    section = card_step.explanation_section(isotonic, contract, {})
    assert section == {"available": False, "reason": section["reason"]} and "isotonic" in section["reason"]
    assert "No exact explanations for this model" in "\n".join(card_step.explanation_lines(section))
    assert "No exact explanations" in _explanations_html(section)
