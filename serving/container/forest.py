"""Score a fitted HistGradientBoosting model without scikit-learn's per-call overhead.

scikit-learn walks each tree in its own OpenMP call: ~10 µs a tree however few the rows, so ~1 ms for one
row of a 90-tree model. For a few rows, walking the trees in plain Python over lists is ~10x faster (about
a dozen node visits per tree); for larger batches scikit-learn's compiled per-tree predictors are faster
and are called directly, skipping the input validation around them. Node semantics are scikit-learn's
`_predict_one_from_raw_data`: NaN follows the node's missing direction; a categorical split sends a value
left when it is in the node's left bitset, right when it is a known category, and treats anything else
(unseen, negative) as missing; a numeric split goes left when `value <= threshold`. The category tables come
from `pipelines.explain`, whose contributions follow the same routing.

Only a model that `scoring.compile_scorer` has checked against scikit-learn's own predictions is served
this way; anything this module does not recognise raises `Unsupported` and is served by scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.explain import CATEGORY_SLOTS, BoosterParts, Unexplainable, booster_parts, read_tree

WALK_MAX_ROWS = 16  # measured crossover: up to here the Python walk wins, beyond it scikit-learn's per-tree calls


class Unsupported(Exception):
    """The estimator is not a shape this module can evaluate; the caller falls back to scikit-learn."""


@dataclass(frozen=True)
class TreeWalk:
    """All trees as flat Python lists (node i of the ensemble at index i), for walking one row at a time."""

    roots: list[int]
    is_leaf: list[bool]
    feature: list[int]
    threshold: list[float]
    missing_left: list[bool]
    left: list[int]
    right: list[int]
    value: list[float]
    categorical: list[list[bool] | None]  # per node: does category code c go left? (None: a numeric split)
    baseline: float

    def raw_one(self, row: list[float]) -> float:
        """The decision function for one row (a list in the booster's input order)."""
        is_leaf, feature, threshold, categorical = self.is_leaf, self.feature, self.threshold, self.categorical
        missing_left, left, right = self.missing_left, self.left, self.right
        total = self.baseline
        for node in self.roots:
            while not is_leaf[node]:
                value = row[feature[node]]
                table = categorical[node]
                if value != value:  # NaN
                    go_left = missing_left[node]
                elif table is not None:
                    go_left = table[int(value)] if 0 <= value < CATEGORY_SLOTS else missing_left[node]
                else:
                    go_left = value <= threshold[node]
                node = left[node] if go_left else right[node]
            total += self.value[node]
        return total


def compile_walk(parts: BoosterParts) -> TreeWalk:
    """Flatten a fitted binary `HistGradientBoostingClassifier` (its predictors' node arrays) into a `TreeWalk`."""
    walk = TreeWalk([], [], [], [], [], [], [], [], [], parts.baseline)
    for predictor in parts.predictors:
        tree, offset = read_tree(predictor, parts.known_bitsets, parts.feature_to_bitset), len(walk.is_leaf)
        walk.roots.append(offset)
        walk.is_leaf.extend(tree.is_leaf)
        walk.feature.extend(tree.feature)
        walk.threshold.extend(tree.threshold)
        walk.missing_left.extend(tree.missing_left)
        walk.left.extend(child + offset for child in tree.left)
        walk.right.extend(child + offset for child in tree.right)
        walk.value.extend(tree.value)
        walk.categorical.extend(tree.categorical)
    return walk


@dataclass(frozen=True)
class Ensemble:
    """A boosted ensemble scored by whichever of two exact methods is faster for the batch size."""

    walk: TreeWalk
    predictors: tuple[Any, ...]
    known_bitsets: np.ndarray
    feature_to_bitset: np.ndarray

    def raw(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] <= WALK_MAX_ROWS:
            return np.array([self.walk.raw_one(row) for row in x.tolist()], dtype=np.float64)
        return self.per_tree_raw(x)

    def per_tree_raw(self, x: np.ndarray) -> np.ndarray:
        """scikit-learn's own compiled tree walk, one call per tree, one thread."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        total = np.full(x.shape[0], self.walk.baseline)
        for predictor in self.predictors:
            total += predictor.predict(x, self.known_bitsets, self.feature_to_bitset, 1)
        return total


def compile_ensemble(booster: Any) -> Ensemble:
    try:
        parts = booster_parts(booster)  # the explainer reads the same booster the same way
    except Unexplainable as exc:
        raise Unsupported(str(exc)) from exc
    return Ensemble(compile_walk(parts), parts.predictors, parts.known_bitsets, parts.feature_to_bitset)
