"""Why this score: exact per-prediction feature contributions for the served tree model (path-dependent TreeSHAP).

The served model is scikit-learn's HistGradientBoostingClassifier (native NaN and categorical splits) behind a
column transformer, calibrated by a sigmoid (`pipelines.steps.train`). Explanation libraries do not follow
its categorical splits, so the Shapley values are computed here, over the booster's own tree nodes, with
Algorithm 2 of Lundberg, Erion & Lee (2018), "Consistent individualized feature attribution for tree
ensembles": polynomial time, exact for the path-dependent game, in which the value of a feature set S is the
prediction when the features in S follow the row and every other split is averaged over its children
weighted by the training rows (`count`) that reached each. Local accuracy holds exactly:
expected value + sum of contributions = the booster's raw log-odds for the row.

Routing is scikit-learn's (`_predict_one_from_raw_data`), as in `serving.container.forest` (which takes its
category tables from here): NaN follows the node's missing direction; a categorical split sends a value left
when it is in the node's left bitset, right when it is a known category, and treats anything else (unseen,
negative) as missing; a numeric split goes left when `value <= threshold`.

The sigmoid calibrator is affine in the raw score (p = expit(-(a f + b))), so the calibrated log-odds are
`scale * f + offset` with scale = -a, offset = -b: contributions times `scale` sum, with the expected value
times `scale` plus `offset`, exactly to the calibrated logit. A calibrator ensemble (several cross-validated
members, whose probabilities are averaged) is not affine in any one raw score and is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CATEGORY_SLOTS = 256  # scikit-learn bins categories into at most 255 values (uint8)
_CODES = np.arange(CATEGORY_SLOTS)


class Unexplainable(Exception):
    """The model is not a shape whose contributions this module computes exactly; the message says why."""


def bitset_members(bitset: np.ndarray) -> np.ndarray:
    """(256,) bool: which category codes a scikit-learn bitset (8 x uint32) contains."""
    words = bitset.astype(np.uint64)[_CODES // 32]
    return ((words >> (_CODES % 32).astype(np.uint64)) & 1).astype(bool)


def category_table(missing_left: bool, left_bitset: np.ndarray, known_bitset: np.ndarray) -> list[bool]:
    """Per category code: does it go left? Left when in the left bitset; right when known; a category never
    seen in training goes where missing goes."""
    known = bitset_members(known_bitset)
    return (bitset_members(left_bitset) | (~known & missing_left)).tolist()


@dataclass(frozen=True)
class Tree:
    """One tree's nodes as Python lists (node 0 is the root), with the training rows that reached each node."""

    is_leaf: list[bool]
    feature: list[int]
    threshold: list[float]
    missing_left: list[bool]
    left: list[int]
    right: list[int]
    value: list[float]
    cover: list[float]
    categorical: list[list[bool] | None]  # per node: does category code c go left? (None: a numeric split)

    def goes_left(self, node: int, value: float) -> bool:
        if value != value:  # NaN
            return self.missing_left[node]
        table = self.categorical[node]
        if table is not None:
            return table[int(value)] if 0 <= value < CATEGORY_SLOTS else self.missing_left[node]
        return value <= self.threshold[node]

    def mean_value(self) -> float:
        """The tree's expected output: leaf values weighted by the training rows reaching them."""
        leaves = [i for i, leaf in enumerate(self.is_leaf) if leaf]
        return sum(self.cover[i] * self.value[i] for i in leaves) / self.cover[0]


def read_tree(predictor: Any, known_bitsets: np.ndarray, feature_to_bitset: np.ndarray) -> Tree:
    """One fitted predictor's nodes as a `Tree` (also what `serving.container.forest` walks to score)."""
    tree = Tree([], [], [], [], [], [], [], [], [])
    for node in predictor.nodes:
        leaf = bool(node["is_leaf"])
        tree.is_leaf.append(leaf)
        tree.feature.append(int(node["feature_idx"]))
        tree.threshold.append(float(node["num_threshold"]))
        tree.missing_left.append(bool(node["missing_go_to_left"]))
        tree.left.append(int(node["left"]))
        tree.right.append(int(node["right"]))
        tree.value.append(float(node["value"]))
        tree.cover.append(float(node["count"]))
        if node["is_categorical"] and not leaf:
            known = known_bitsets[feature_to_bitset[node["feature_idx"]]]
            left_bitset = predictor.raw_left_cat_bitsets[node["bitset_idx"]]
            tree.categorical.append(category_table(bool(node["missing_go_to_left"]), left_bitset, known))
        else:
            tree.categorical.append(None)
    return tree


@dataclass(frozen=True)
class BoosterParts:
    """What reading a fitted binary HistGradientBoostingClassifier's trees needs (also the container's scorer)."""

    predictors: tuple[Any, ...]  # one per boosting iteration
    known_bitsets: np.ndarray  # category routing tables, per categorical feature
    feature_to_bitset: np.ndarray
    baseline: float  # the constant start, before any tree


def booster_parts(booster: Any) -> BoosterParts:
    """The booster's predictors and routing tables; Unexplainable names what does not fit (not fitted, not
    binary, no trees)."""
    predictors = getattr(booster, "_predictors", None)
    if predictors is None or getattr(booster, "n_trees_per_iteration_", None) != 1:
        raise Unexplainable("not a fitted binary HistGradientBoostingClassifier")
    known_bitsets, feature_to_bitset = booster._bin_mapper.make_known_categories_bitsets()
    baseline = np.asarray(booster._baseline_prediction, dtype=np.float64).ravel()
    if baseline.size != 1:
        raise Unexplainable("more than one baseline value")
    if not predictors:
        raise Unexplainable("the model has no trees")
    return BoosterParts(tuple(p for (p,) in predictors), known_bitsets, feature_to_bitset, float(baseline[0]))


def member_parts(member: Any) -> tuple[Any, Any, Any]:
    """(transformers ahead of the booster or None, the HistGradientBoosting booster, its sigmoid calibrator) of
    one calibrated member (`CalibratedClassifierCV.calibrated_classifiers_[i]`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    calibrators = getattr(member, "calibrators", [])
    if getattr(member, "method", None) != "sigmoid" or len(calibrators) != 1:
        raise Unexplainable("not one sigmoid calibrator: only a sigmoid is affine in the raw score")
    estimator = member.estimator
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    prepare = estimator[:-1] if isinstance(estimator, Pipeline) and len(estimator) > 1 else None
    booster = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(booster, HistGradientBoostingClassifier):
        raise Unexplainable(f"the calibrated estimator is {type(booster).__name__}, not HistGradientBoosting")
    return prepare, booster, calibrators[0]


def _tree(predictor: Any, known_bitsets: np.ndarray, feature_to_bitset: np.ndarray) -> Tree:
    tree = read_tree(predictor, known_bitsets, feature_to_bitset)
    for i, leaf in enumerate(tree.is_leaf):
        # the path-dependent expectation splits a node's rows between its children: they must add up
        if not leaf and (tree.cover[i] <= 0 or tree.cover[tree.left[i]] + tree.cover[tree.right[i]] != tree.cover[i]):
            raise Unexplainable(f"node {i}: the training rows of its children do not add up to its own")
    return tree


# --- Algorithm 2 (path-dependent TreeSHAP). The path `m` is four parallel lists: feature d, zero fraction z
# (share of training rows that follow this path through the feature's splits), one fraction o (1 when the row
# itself follows it, else 0) and the permutation weights w. Element 0 is the paper's placeholder (feature -1).


def _extend(
    d: list[int], z: list[float], o: list[float], w: list[float], pz: float, po: float, pi: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    length = len(d)
    d, z, o, w = [*d, pi], [*z, pz], [*o, po], [*w, 1.0 if length == 0 else 0.0]
    for i in range(length - 1, -1, -1):
        w[i + 1] += po * w[i] * (i + 1) / (length + 1)
        w[i] = pz * w[i] * (length - i) / (length + 1)
    return d, z, o, w


def _unwound_weights(w: list[float], zi: float, oi: float) -> list[float]:
    """The weights of the path with one element (zero fraction zi, one fraction oi) taken out again."""
    length = len(w)
    out = w[:-1]
    n = w[-1]
    for j in range(length - 2, -1, -1):
        if oi != 0:
            t = out[j]
            out[j] = n * length / ((j + 1) * oi)
            n = t - out[j] * zi * (length - j - 1) / length
        else:
            out[j] = out[j] * length / (zi * (length - j - 1))
    return out


def _unwound_sum(w: list[float], zi: float, oi: float) -> float:
    """sum(_unwound_weights(w, zi, oi)) without building the list (the leaf loop's hot spot)."""
    length = len(w)
    n, total = w[-1], 0.0
    if oi != 0:
        for j in range(length - 2, -1, -1):
            weight = n * length / ((j + 1) * oi)
            total += weight
            n = w[j] - weight * zi * (length - j - 1) / length
    else:
        for j in range(length - 2, -1, -1):
            total += w[j] * length / (zi * (length - j - 1))
    return total


def _unwind(
    d: list[int], z: list[float], o: list[float], w: list[float], i: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    weights = _unwound_weights(w, z[i], o[i])
    return d[:i] + d[i + 1 :], z[:i] + z[i + 1 :], o[:i] + o[i + 1 :], weights


def tree_shap(tree: Tree, row: list[float], phi: list[float]) -> None:
    """Add one tree's Shapley values for `row` (a list in the tree's input order) to `phi`."""

    def recurse(node: int, d: list[int], z: list[float], o: list[float], w: list[float], pz: float, po: float, pi: int):
        d, z, o, w = _extend(d, z, o, w, pz, po, pi)
        if tree.is_leaf[node]:
            value = tree.value[node]
            for i in range(1, len(d)):
                phi[d[i]] += _unwound_sum(w, z[i], o[i]) * (o[i] - z[i]) * value
            return
        feature = tree.feature[node]
        hot, cold = (
            (tree.left[node], tree.right[node])
            if tree.goes_left(node, row[feature])
            else (tree.right[node], tree.left[node])
        )
        iz = io = 1.0
        for k in range(1, len(d)):
            if d[k] == feature:  # the feature split earlier on this path: undo it, carry its fractions
                iz, io = z[k], o[k]
                d, z, o, w = _unwind(d, z, o, w, k)
                break
        cover = tree.cover[node]
        recurse(hot, d, z, o, w, iz * tree.cover[hot] / cover, io, feature)
        recurse(cold, d, z, o, w, iz * tree.cover[cold] / cover, 0.0, feature)

    recurse(0, [], [], [], [], 1.0, 1.0, -1)


@dataclass(frozen=True)
class LeafPaths:
    """Every leaf of the ensemble with the distinct features on its path, laid out for numpy.

    Path-dependent TreeSHAP factorises per leaf: with the row's one fraction o_k (1 when the row follows the
    path through every split on feature k, else 0) and the zero fraction z_k (share of training rows that do),
    the leaf's value given the known set S is v * prod_{k in S} o_k * prod_{k not in S} z_k, so feature i
    gets v * (o_i - z_i) * sum_s q_s * s! (D-1-s)! / D!, where q is the polynomial prod_{k != i} (z_k + o_k t)
    - Algorithm 2's EXTEND builds the same product one split at a time, and its UNWIND is the division by
    (z_i + o_i t) done below. Evaluated for all leaves at once, one row costs ~1 ms instead of ~50 ms for the
    recursion; `TreeShap.reference_contributions` (Algorithm 2 as published) stays the yardstick in the tests.
    """

    # internal nodes of all trees (index g)
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    categorical_nodes: np.ndarray  # the g of every categorical split
    tables: np.ndarray  # (categorical splits, 256) bool: does category code c go left?
    # path slots x leaves, slot-major so each slot is one contiguous vector over the leaves (D slots per leaf;
    # unused slots have z = 1, o = 0: a factor of 1)
    value: np.ndarray  # (leaves,)
    zero: np.ndarray  # (D, leaves)
    slot_feature: np.ndarray  # (D * leaves,) tree-input column, or -1 for an unused slot
    weights: np.ndarray  # (D, leaves): s! (D_l - 1 - s)! / D_l! for s < D_l, else 0
    # path conditions, grouped by slot: internal node g must go left (or right) for the row to follow the path
    condition_node: np.ndarray
    condition_left: np.ndarray
    condition_starts: np.ndarray  # where each used slot's conditions start
    used_slots: np.ndarray  # (flat slot index k * leaves + l) of each group

    @classmethod
    def build(cls, trees: tuple[Tree, ...]) -> LeafPaths:
        feature: list[int] = []
        threshold: list[float] = []
        missing_left: list[bool] = []
        categorical_nodes: list[int] = []
        tables: list[list[bool]] = []
        leaves: list[tuple[float, list[int], list[float], list[list[tuple[int, bool]]]]] = []
        for tree in trees:
            index: dict[int, int] = {}
            for node, leaf in enumerate(tree.is_leaf):
                if not leaf:
                    index[node] = len(feature)
                    table = tree.categorical[node]
                    if table is not None:
                        categorical_nodes.append(len(feature))
                        tables.append(table)
                    feature.append(tree.feature[node])
                    threshold.append(tree.threshold[node])
                    missing_left.append(tree.missing_left[node])
            stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                if tree.is_leaf[node]:
                    order: list[int] = []
                    zeros: dict[int, float] = {}
                    conditions: dict[int, list[tuple[int, bool]]] = {}
                    for parent, went_left, share in path:
                        f = tree.feature[parent]
                        if f not in zeros:
                            order.append(f)
                            zeros[f], conditions[f] = 1.0, []
                        zeros[f] *= share
                        conditions[f].append((index[parent], went_left))
                    leaves.append((tree.value[node], order, [zeros[f] for f in order], [conditions[f] for f in order]))
                    continue
                for child, went_left in ((tree.left[node], True), (tree.right[node], False)):
                    stack.append((child, [*path, (node, went_left, tree.cover[child] / tree.cover[node])]))
        depth, count = max(1, max(len(order) for _, order, _, _ in leaves)), len(leaves)
        zero = np.ones((depth, count))
        slot_feature = np.full((depth, count), -1, dtype=np.intp)
        weights = np.zeros((depth, count))
        grouped: dict[int, list[tuple[int, bool]]] = {}
        for column, (_, path_features, path_zeros, path_conditions) in enumerate(leaves):
            d = len(path_features)
            zero[:d, column] = path_zeros
            slot_feature[:d, column] = path_features
            weights[:d, column] = [math.factorial(s) * math.factorial(d - 1 - s) / math.factorial(d) for s in range(d)]
            for k, listed in enumerate(path_conditions):
                grouped[k * count + column] = listed
        used = sorted(grouped)
        starts = np.cumsum([0] + [len(grouped[slot]) for slot in used[:-1]]) if used else np.zeros(0)
        flat = [condition for slot in used for condition in grouped[slot]]
        return cls(
            np.array(feature, dtype=np.intp),
            np.array(threshold, dtype=np.float64),
            np.array(missing_left, dtype=bool),
            np.array(categorical_nodes, dtype=np.intp),
            np.array(tables, dtype=bool).reshape(len(tables), CATEGORY_SLOTS),
            np.array([v for v, _, _, _ in leaves], dtype=np.float64),
            zero,
            slot_feature.ravel(),
            weights,
            np.array([g for g, _ in flat], dtype=np.intp),
            np.array([left for _, left in flat], dtype=bool),
            np.asarray(starts, dtype=np.intp),
            np.array(used, dtype=np.intp),
        )

    def goes_left(self, row: np.ndarray) -> np.ndarray:
        """Per internal node: does this row go left there? (the routing of `Tree.goes_left`, vectorised)"""
        value = row[self.feature]
        with np.errstate(invalid="ignore"):
            left = value <= self.threshold
        if self.categorical_nodes.size:
            codes = value[self.categorical_nodes]
            known = (codes >= 0) & (codes < CATEGORY_SLOTS)  # False for NaN
            lookup = self.tables[np.arange(codes.size), np.where(known, codes, 0).astype(np.intp)]
            left[self.categorical_nodes] = np.where(known, lookup, self.missing_left[self.categorical_nodes])
        return np.where(np.isnan(value), self.missing_left, left)

    def contributions(self, row: np.ndarray, width: int) -> np.ndarray:
        depth, leaves = self.zero.shape
        agrees = self.goes_left(row)[self.condition_node] == self.condition_left
        one = np.zeros(depth * leaves)
        if self.used_slots.size:  # no slot at all when no tree has a split
            one[self.used_slots] = np.logical_and.reduceat(agrees, self.condition_starts)
        one = one.reshape(depth, leaves)
        zero = self.zero
        # product polynomial prod_k (z_k + o_k t), coefficient s in row s
        product = np.zeros((depth + 1, leaves))
        product[0] = 1.0
        for k in range(depth):
            shifted = product[:-1] * one[k]
            product *= zero[k]
            product[1:] += shifted
        # for each slot i: sum_s weight_s * q_s with q = product / (z_i + o_i t); for o_i = 1 divide from the top
        # (q_{s-1} = p_s - z_i q_s, each step scaled by z_i <= 1, so errors shrink); for o_i = 0, q = p / z_i
        total_one = np.zeros((depth, leaves))
        quotient = np.zeros((depth, leaves))
        for s in range(depth, 0, -1):
            quotient = product[s] - zero * quotient
            total_one += quotient * self.weights[s - 1]
        total_zero = (product[:depth] * self.weights).sum(axis=0) / zero
        total = np.where(one > 0, total_one, total_zero)
        gain = (self.value * (one - zero) * total).ravel()
        columns = np.where(self.slot_feature < 0, width, self.slot_feature)
        return np.bincount(columns, weights=gain, minlength=width + 1)[:width]


@dataclass(frozen=True)
class TreeShap:
    """Shapley values of a binary HistGradientBoostingClassifier's raw log-odds, per tree-input column."""

    trees: tuple[Tree, ...]
    width: int
    baseline: float  # the booster's constant start (before any tree)
    expected_value: float  # baseline + each tree's cover-weighted mean: the prediction when nothing is known
    leaves: LeafPaths

    @classmethod
    def from_booster(cls, booster: Any) -> TreeShap:
        parts = booster_parts(booster)
        trees = tuple(_tree(p, parts.known_bitsets, parts.feature_to_bitset) for p in parts.predictors)
        expected = parts.baseline + sum(tree.mean_value() for tree in trees)
        return cls(trees, int(booster.n_features_in_), parts.baseline, expected, LeafPaths.build(trees))

    def _checked(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"expected a (rows, {self.width}) matrix of tree inputs, got shape {x.shape}")
        return x

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, width) contributions in raw log-odds for tree inputs `x` (rows, width)."""
        x = self._checked(x)
        out = np.zeros(x.shape, dtype=np.float64)
        for r in range(x.shape[0]):
            out[r] = self.leaves.contributions(x[r], self.width)
        return out

    def reference_contributions(self, x: np.ndarray) -> np.ndarray:
        """The same values by Algorithm 2's recursion, as published (slow: the tests' yardstick)."""
        x = self._checked(x)
        out = np.zeros(x.shape, dtype=np.float64)
        for r, row in enumerate(x.tolist()):
            phi = [0.0] * self.width
            for tree in self.trees:
                tree_shap(tree, row, phi)
            out[r] = phi
        return out


@dataclass(frozen=True)
class Explanation:
    """Contributions in the calibrated model's log-odds, one column per contract feature (contract order)."""

    features: tuple[str, ...]
    contributions: np.ndarray  # (rows, features)
    expected_value: float  # calibrated log-odds when nothing is known about the row

    def log_odds(self) -> np.ndarray:
        return self.expected_value + self.contributions.sum(axis=1)

    def top(self, row: int, count: int) -> list[dict[str, Any]]:
        """The row's `count` largest contributions by magnitude: feature names and signed contributions only."""
        values = self.contributions[row]
        order = sorted(range(len(values)), key=lambda j: (-abs(values[j]), j))[:count]
        return [{"feature": self.features[j], "contribution": float(values[j])} for j in order]

    def mean_abs(self) -> dict[str, float]:
        """Global importance: mean |contribution| per feature over the rows."""
        means = np.abs(self.contributions).mean(axis=0) if len(self.contributions) else np.zeros(len(self.features))
        return {name: float(m) for name, m in zip(self.features, means, strict=True)}


def _unwrap(model: Any) -> tuple[Any, Any, Any]:
    """(transformers ahead of the booster or None, the booster, the sigmoid calibrator) of the served model."""
    from sklearn.calibration import CalibratedClassifierCV

    if not isinstance(model, CalibratedClassifierCV):
        raise Unexplainable(f"{type(model).__name__} is not a CalibratedClassifierCV")
    if getattr(model, "method", None) != "sigmoid":
        raise Unexplainable(f"calibration method {model.method!r}: only sigmoid is affine in the raw score")
    members = model.calibrated_classifiers_
    if len(members) != 1:
        raise Unexplainable(
            f"{len(members)} calibrated members: averaged probabilities are not affine in one raw score "
            "(calibrate a FrozenEstimator, or ensemble=False, to get one)"
        )
    prepare, booster, calibrator = member_parts(members[0])
    if list(booster.classes_) != [0, 1]:
        raise Unexplainable(f"expected classes [0, 1], got {list(booster.classes_)}")
    return prepare, booster, calibrator


def _selected(columns: Any, width: int) -> list[int]:
    return [int(c) for c in np.atleast_1d(np.arange(width)[columns])]  # a boolean mask or indices


def _tree_input_sources(booster: Any) -> list[int]:
    """For each tree input column, the booster input column it comes from. The booster's own preprocessor
    (present when it has categorical features) one-to-one encodes columns and puts categorical ones first."""
    width = int(booster.n_features_in_)
    preprocessor = getattr(booster, "_preprocessor", None)
    if preprocessor is None:
        return list(range(width))
    sources: list[int] = []
    for _, transformer, columns in preprocessor.transformers_:
        if transformer == "drop":
            continue
        sources.extend(_selected(columns, width))
    if sorted(sources) != list(range(width)):
        raise Unexplainable("the booster's preprocessor does not map each input to one tree input")
    return sources


@dataclass(frozen=True)
class ModelExplainer:
    """Explains the pipeline's calibrated model on its feature frame (`pipelines.steps.train.features`)."""

    shap: TreeShap
    prepare: Any | None  # the fitted transformers ahead of the booster
    preprocessor: Any | None  # the booster's own categorical encoder
    to_contract: np.ndarray  # contract column index of each tree input column
    features: tuple[str, ...]  # contract feature names, contract order
    scale: float  # calibrated log-odds per unit of raw log-odds (-a of the sigmoid)
    offset: float  # calibrated log-odds = scale * raw + offset

    @property
    def expected_value(self) -> float:
        return self.scale * self.shap.expected_value + self.offset

    def tree_inputs(self, frame: pd.DataFrame) -> np.ndarray:
        x = self.prepare.transform(frame) if self.prepare is not None else frame
        x = self.preprocessor.transform(x) if self.preprocessor is not None else x
        return np.asarray(x, dtype=np.float64)

    def raw(self, frame: pd.DataFrame) -> tuple[np.ndarray, float]:
        """Contributions in the booster's raw log-odds (contract order) and the raw expected value."""
        return self._by_contract(self.shap.contributions(self.tree_inputs(frame))), self.shap.expected_value

    def _by_contract(self, by_input: np.ndarray) -> np.ndarray:
        out = np.zeros((by_input.shape[0], len(self.features)))
        out[:, self.to_contract] = by_input
        return out

    def explain(self, frame: pd.DataFrame) -> Explanation:
        raw, _ = self.raw(frame)
        return Explanation(self.features, raw * self.scale, self.expected_value)

    def explain_tree_inputs(self, x: np.ndarray) -> Explanation:
        """As `explain`, from the trees' own input matrix (a caller that builds it faster than the transformers)."""
        return Explanation(
            self.features, self._by_contract(self.shap.contributions(x)) * self.scale, self.expected_value
        )


def explainer_for(model: Any, feature_columns: list[str]) -> ModelExplainer:
    """The exact explainer for the pipeline's model shape, or `Unexplainable` saying why not."""
    prepare, booster, calibrator = _unwrap(model)
    if prepare is not None:
        names = [str(n) for n in prepare.get_feature_names_out()]
    else:
        names = [str(n) for n in getattr(booster, "feature_names_in_", [])]
    if sorted(names) != sorted(feature_columns) or len(set(names)) != len(names):
        raise Unexplainable("the booster's inputs are not the contract's feature columns, one each")
    position = {name: j for j, name in enumerate(feature_columns)}
    to_contract = np.array([position[names[source]] for source in _tree_input_sources(booster)], dtype=np.intp)
    return ModelExplainer(
        TreeShap.from_booster(booster),
        prepare,
        getattr(booster, "_preprocessor", None),
        to_contract,
        tuple(feature_columns),
        -float(calibrator.a_),
        -float(calibrator.b_),
    )


SUMMARY_ROWS = 1000  # rows explained for a summary: a stable mean in ~1-2 s (bench/explain.py)
UNITS = "calibrated log-odds"


def attribution_summary(explainer: ModelExplainer, frame: pd.DataFrame, computed_on: str) -> dict[str, Any]:
    """Mean |contribution| per feature over (a fixed sample of) `frame`: an aggregate, never a row's values."""
    rows = frame if len(frame) <= SUMMARY_ROWS else frame.sample(SUMMARY_ROWS, random_state=0)
    return {
        "computed_on": computed_on,
        "rows": len(rows),
        "units": UNITS,
        "expected_value": explainer.expected_value,
        "mean_abs": explainer.explain(rows).mean_abs(),
    }
