"""k-fold cross-validation of the training rows: every row in exactly one fold, each fold stratified the way the
validation split is (sampling.py): single-label rows by genre strata, multi-label rows by iterative stratification.

A fold run (``data.folds=k data.fold=i``) trains on the other k-1 folds, validates on fold ``i`` (its validation
probabilities are its share of the out-of-fold probabilities) and scores the held-out rows (``data.val_csv`` or the
seeded validation split) as its test set: the rows that no fold trains or tunes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genre_lab.data.sampling import genres_short_of, split_keys, strata
from genre_lab.errors import GenreLabError, require_int

MAX_FOLDS = 20


def check_fold_settings(folds: Any, fold: Any) -> None:
    """``data.folds`` (k ≥ 2) and ``data.fold`` (0 … k-1) are set together, or neither."""
    if folds is None and fold is None:
        return
    if folds is None:
        raise GenreLabError(f"data.fold={fold!r} without data.folds: name the number of folds too, e.g. "
                            f"data.folds=5 data.fold={fold}")
    require_int(folds, "data.folds", 2, 5, MAX_FOLDS)
    if fold is None:
        raise GenreLabError(f"data.folds={folds} without data.fold: a run trains one fold; run them all with "
                            f"genre-lab train -m data.folds={folds} data.fold={','.join(map(str, range(folds)))}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise GenreLabError(f"data.fold={fold!r} must be a whole number from 0 to {folds - 1} (data.folds={folds})")


def check_fold_support(labels: Sequence[Sequence[str]], folds: int) -> None:
    """Every genre needs a row in every fold: at least ``folds`` training rows."""
    short = genres_short_of(labels, folds)
    if short:
        raise GenreLabError(
            f"data.folds={folds}, but genre(s) {short} have fewer training rows than folds (after data.sample and "
            f"the validation split): each fold scores every genre, so each needs a row in every fold. Use "
            f"data.folds={max(2, min(short.values()))} or fewer, add rows, or sample more (data.sample)."
        )


def fold_ids(labels: Sequence[Sequence[str]], folds: int, method: str, seed: int,
             targets: np.ndarray | None = None) -> np.ndarray:
    """The fold (0 … folds-1) of every row, seeded. ``method``: ``iterative`` (multi-label ``targets``, the
    iterative-stratification package's k-fold) or ``combination`` (strata of ``split_keys``, dealt round-robin)."""
    check_fold_support(labels, folds)
    if method == "iterative":
        return iterative_folds(targets, folds, seed)
    return dealt_folds(split_keys(labels, 1.0 / folds), folds, seed)


def dealt_folds(keys: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Each stratum's rows, shuffled, dealt to the folds in turn, the deal going on where the last stratum's ended:
    every stratum is within one row of an equal share in each fold, and so is every fold's size."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(keys), dtype=np.int64)
    dealt = 0
    for rows in strata(keys).values():
        rows = rng.permutation(rows)
        out[rows] = (dealt + np.arange(len(rows))) % folds
        dealt += len(rows)
    return out


def iterative_folds(targets: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold  # deferred: pulls in scikit-learn

    targets = np.asarray(targets, dtype=np.int64)
    out = np.empty(len(targets), dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    for i, (_, held) in enumerate(splitter.split(np.zeros(len(targets)), targets)):
        out[held] = i
    return out
