"""A served `GbmEnsemble`'s trees compiled into flat arrays, predicting every tree of every row at once.

scikit-learn's `HistGradientBoostingRegressor.predict` makes one Python call and one OpenMP region per
tree (about 20 us each), so a one-row prediction of the default model (3 members x 400 trees) spends most
of its time calling trees. `CompiledForest` gives the same floats with a few numpy steps:

- by leaf bitvectors (the QuickScorer method), `BITVECTOR_ROWS` rows at a time: every split of every
  tree is decided at once, each split that sends the row right clears the bits of the leaves of its left
  subtree, and the lowest bit left in a tree's word is the leaf the row reaches (leaves numbered left
  to right, at most 64 per tree, so a word is one uint64);
- for a forest with a tree of more than 64 leaves, by walking all trees one level per numpy step.

A member's raw prediction is its baseline plus its trees' leaf values added in iteration order
(`np.cumsum` adds sequentially, as scikit-learn does), and the members are averaged with
`GbmEnsemble.predict`'s own expression; `compile_forest` reproduces only the member kinds it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rul.models import GbmEnsemble

# Rows decided together by bitvectors (a chunk holds rows x splits words: 16 x 61k x 8 bytes for the
# default model).
BITVECTOR_ROWS = 8
_ALL_LEAVES = np.uint64(2**64 - 1)
_MAX_LEAVES = 64


@dataclass(frozen=True)
class LeafBits:
    """The splits of every tree as (feature, threshold, missing-left, every leaf but its left subtree's),
    each tree's splits contiguous from `tree_starts` (a first split that changes nothing keeps none
    empty), and every tree's leaf values in left-to-right order from `leaf_offsets`."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    mask: np.ndarray
    tree_starts: np.ndarray
    leaf_offsets: np.ndarray
    leaf_value: np.ndarray

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The value of the leaf each row of `x` reaches in each tree (rows x trees)."""
        values = np.take(x, self.feature, axis=1)
        left = values <= self.threshold  # a missing value compares False: right...
        if np.isnan(x).any():  # ...unless its split sends missing values left
            left |= np.isnan(values) & self.missing_left
        keep = np.negative(left.view(np.uint8).astype(np.uint64))  # a split sent left keeps every leaf
        words = np.bitwise_and.reduceat(self.mask | keep, self.tree_starts, axis=1)
        lowest = words & (~words + np.uint64(1))
        _, exponent = np.frexp(lowest.astype(np.float64))  # 2**k -> exponent k + 1, exactly
        return self.leaf_value[self.leaf_offsets + exponent - 1]


@dataclass(frozen=True)
class CompiledForest:
    """The trees of every ensemble member as flat node arrays (leaves point to themselves), and as
    `LeafBits` when every tree has at most 64 leaves."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    children: np.ndarray  # node k's left child at 2k, its right child at 2k + 1
    is_leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    members: tuple[tuple[float, int, int], ...]  # (baseline, first tree, end tree) per member
    depth: int
    n_features: int
    bits: LeafBits | None = None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The ensemble's prediction for each row of `features` (any float type, as scikit-learn takes)."""
        x = np.asarray(features, dtype=np.float64)  # the estimator validates its input to float64 too
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (rows, {self.n_features}), got {x.shape}")
        if self.bits is not None:
            chunks = range(0, len(x), BITVECTOR_ROWS)
            leaves = np.concatenate([self.bits.leaves(x[start : start + BITVECTOR_ROWS]) for start in chunks])
        else:
            leaves = self._leaves_by_level(x)
        predictions = []
        for baseline, first, end in self.members:
            terms = np.concatenate([np.full((len(x), 1), baseline), leaves[:, first:end]], axis=1)
            predictions.append(np.cumsum(terms, axis=1)[:, -1])
        return np.mean(predictions, axis=0)

    def _leaves_by_level(self, x: np.ndarray) -> np.ndarray:
        """The value of the leaf each row reaches in each tree: one step of every tree per level."""
        flat = x.ravel()
        row_starts = (np.arange(len(x)) * self.n_features)[:, None]
        nodes = np.repeat(self.roots[None, :], len(x), axis=0)
        missing = bool(np.isnan(flat).any())
        for level in range(self.depth):
            values = flat[row_starts + self.feature[nodes]]
            go_right = ~(values <= self.threshold[nodes])
            if missing:
                go_right &= ~(np.isnan(values) & self.missing_left[nodes])
            nodes = self.children[2 * nodes + go_right]
            if level % 4 == 3 and self.is_leaf[nodes].all():
                break
        return self.value[nodes]


def _supported_member(member) -> bool:
    return (
        type(member).__name__ == "HistGradientBoostingRegressor"
        and member.loss == "squared_error"
        and type(member._loss.link).__name__ == "IdentityLink"
        and member.n_trees_per_iteration_ == 1
        and member.is_categorical_ is None
        and getattr(member, "_preprocessor", None) is None
        and not any(tree.nodes["is_categorical"].any() for (tree,) in member._predictors)
    )


def _leaf_ranges(left, right, leaf, depth) -> tuple[np.ndarray, np.ndarray] | None:
    """Each node's leaves as a range (first, count) of its tree's leaves numbered left to right, one
    numpy step per level; None if a child's depth is not its parent's plus one."""
    inner = np.flatnonzero(~leaf)
    below = depth[inner] + 1
    if not ((depth[left[inner]] == below) & (depth[right[inner]] == below)).all():
        return None
    levels = [inner[depth[inner] == level] for level in range(int(depth.max(initial=0)) + 1)]
    count = leaf.astype(np.int64)
    for nodes in reversed(levels):
        count[nodes] = count[left[nodes]] + count[right[nodes]]
    first = np.zeros(len(leaf), dtype=np.int64)
    for nodes in levels:
        first[left[nodes]] = first[nodes]
        first[right[nodes]] = first[nodes] + count[left[nodes]]
    return first, count


def _leaf_bits(nodes, left, right, offsets) -> LeafBits | None:
    """The `LeafBits` of the concatenated trees (`left`/`right` global indices), or None when a tree has
    more than 64 leaves or inconsistent depths."""
    leaf = nodes["is_leaf"].astype(bool)
    ranges = _leaf_ranges(left, right, leaf, nodes["depth"].astype(np.int64))
    trees = len(offsets) - 1
    tree_of = np.repeat(np.arange(trees), np.diff(offsets))
    leaves_per_tree = np.bincount(tree_of[leaf], minlength=trees)
    if ranges is None or leaves_per_tree.max(initial=0) > _MAX_LEAVES:
        return None
    first, count = ranges
    inner = np.flatnonzero(~leaf)
    width, start = count[left[inner]], first[left[inner]]
    # a left subtree holds at most 63 of a tree's leaves: the shifts stay below 64
    masks = ~(((np.uint64(1) << width.astype(np.uint64)) - np.uint64(1)) << start.astype(np.uint64))
    # one split per tree that always leaves every bit (its mask is every leaf) ahead of the tree's splits
    order = np.argsort(np.r_[tree_of[inner] * 2 + 1, np.arange(trees) * 2], kind="stable")
    splits_per_tree = np.bincount(tree_of[inner], minlength=trees) + 1
    leaf_offsets = np.r_[0, np.cumsum(leaves_per_tree)[:-1]]
    leaf_value = np.empty(int(leaves_per_tree.sum()))
    leaf_value[leaf_offsets[tree_of[leaf]] + first[leaf]] = nodes["value"][leaf]
    return LeafBits(
        feature=np.r_[nodes["feature_idx"][inner].astype(np.intp), np.zeros(trees, np.intp)][order],
        threshold=np.r_[nodes["num_threshold"][inner].astype(np.float64), np.zeros(trees)][order],
        missing_left=np.r_[nodes["missing_go_to_left"][inner].astype(bool), np.zeros(trees, bool)][order],
        mask=np.r_[masks, np.full(trees, _ALL_LEAVES)][order],
        tree_starts=np.r_[0, np.cumsum(splits_per_tree)[:-1]].astype(np.intp),
        leaf_offsets=leaf_offsets.astype(np.intp),
        leaf_value=leaf_value,
    )


def compile_forest(estimator: object) -> CompiledForest | None:
    """A `CompiledForest` of a `GbmEnsemble`, or None when a member is of a kind it does not reproduce."""
    if not isinstance(estimator, GbmEnsemble) or not estimator.members:
        return None
    if not all(_supported_member(member) for member in estimator.members):
        return None
    trees = [tree.nodes for member in estimator.members for (tree,) in member._predictors]
    offsets = np.cumsum([0] + [len(nodes) for nodes in trees])
    nodes = np.concatenate(trees)
    index = np.arange(len(nodes))
    shift = np.repeat(offsets[:-1], [len(tree) for tree in trees])
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, index, nodes["left"].astype(np.intp) + shift)
    right = np.where(leaf, index, nodes["right"].astype(np.intp) + shift)
    members, first = [], 0
    for member in estimator.members:
        # scikit-learn starts from zeros and adds the baseline: reproduce that first rounding too
        baseline = float((np.zeros(1) + member._baseline_prediction.ravel()[0])[0])
        members.append((baseline, first, first + len(member._predictors)))
        first += len(member._predictors)
    return CompiledForest(
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        children=np.column_stack([left, right]).ravel(),
        is_leaf=leaf,
        value=nodes["value"].astype(np.float64),
        roots=offsets[:-1].astype(np.intp),
        members=tuple(members),
        depth=int(nodes["depth"].max()),
        n_features=int(estimator.members[0].n_features_in_),
        bits=_leaf_bits(nodes, left, right, offsets),
    )
