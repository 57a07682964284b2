"""Seeded per-class sampling and stratified train/validation splits.

Both work on one *key* per row. Single-label: the genre. Multi-label sampling: the row's first
listed genre. Multi-label splitting: the row's label combination, with combinations too rare to be
split falling back to the first listed genre, then to one shared "rare" stratum.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from genre_lab.errors import GenreLabError, is_number, require_int

RARE = "<rare>"


def sampling_keys(labels: Sequence[Sequence[str]]) -> list[str]:
    """Per-class sampling key: the (first listed) genre of each row."""
    return [row[0] for row in labels]


def split_keys(labels: Sequence[Sequence[str]], val_size: float) -> list[str]:
    """Stratification key per row: label combination, or a coarser key when it is too rare.

    A stratum needs about ``1 / val_size`` rows to put one row into validation, so rarer
    combinations are merged into their first genre, and rarer first genres into one stratum.
    """
    check_split_support(labels)
    need = math.ceil(1.0 / val_size)
    combos = ["|".join(sorted(row)) for row in labels]
    combo_count = Counter(combos)
    firsts = [row[0] for row in labels]
    first_count = Counter(f for f, c in zip(firsts, combos, strict=True) if combo_count[c] < need)
    keys = []
    for combo, first in zip(combos, firsts, strict=True):
        if combo_count[combo] >= need:
            keys.append(combo)
        elif first_count[first] >= need:
            keys.append(first)
        else:
            keys.append(RARE)
    return keys


def genres_short_of(labels: Sequence[Sequence[str]], minimum: int) -> dict[str, int]:
    """``{genre: rows}`` of the genres on fewer than ``minimum`` rows, by name."""
    counts = Counter(name for row in labels for name in row)
    return {name: n for name, n in sorted(counts.items()) if n < minimum}


def check_split_support(labels: Sequence[Sequence[str]], minimum: int = 2) -> None:
    """Every genre needs ``minimum`` rows to be split: at least one for training and one for validation."""
    short = genres_short_of(labels, minimum)
    if short:
        raise GenreLabError(
            f"genre(s) with fewer than {minimum} rows (after data.sample, when set): {short}. A stratified "
            f"train/validation split needs at least {minimum} rows per genre, one for each side. Add rows, "
            "remove those genres, sample more (data.sample), or give data.val_csv=<file> to skip the split."
        )


def strata(keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The row indices of each key, keys in sorted order."""
    keys_arr = np.asarray(keys, dtype=object)
    return {k: np.flatnonzero(keys_arr == k) for k in sorted(set(keys))}


def sample_per_class(
    keys: Sequence[str], frac: float | None = None, per_class: int | None = None, seed: int = 0
) -> np.ndarray:
    """Row indices holding exactly ``round(frac * n_c)`` (at least 1) or ``per_class`` rows of each class."""
    if (frac is None) == (per_class is None):
        raise GenreLabError("data.sample: set exactly one of sample.frac or sample.per_class")
    if frac is not None and (not is_number(frac) or not 0.0 < frac <= 1.0):
        raise GenreLabError(f"data.sample.frac={frac!r} must be in (0, 1], e.g. sample.frac=0.1 for 10% per class")
    if per_class is not None:
        require_int(per_class, "data.sample.per_class", 1, 200)
    groups = strata(keys)
    if per_class is not None:
        short = {k: len(ix) for k, ix in groups.items() if len(ix) < per_class}
        if short:
            raise GenreLabError(
                f"data.sample.per_class={per_class} but these classes have fewer rows: {short}. "
                f"Use at most {min(short.values())} or sample.frac instead."
            )
    rng = np.random.default_rng(seed)
    picked = []
    for idx in groups.values():
        n = per_class if per_class is not None else max(1, math.floor(frac * len(idx) + 0.5))
        picked.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(picked))


def stratified_split(keys: Sequence[str], val_size: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split with ``round(val_size * N)`` validation rows, allocated to strata proportionally.

    Each stratum gets floor(val_size * n_c) validation rows; the rows left over go to the strata
    with the largest remainders (so the total is exact and every stratum is within one row of its
    share). Strata of a single row stay in training.
    """
    if not 0.0 < val_size < 1.0:
        raise GenreLabError(f"data.val_size={val_size} must be in (0, 1), e.g. 0.2 for a 20% validation split")
    groups = strata(keys)
    total = math.floor(val_size * len(keys) + 0.5)
    quotas = {k: val_size * len(ix) for k, ix in groups.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    spare = total - sum(counts.values())
    splittable = [k for k in groups if len(groups[k]) - counts[k] >= 2]
    for k in sorted(splittable, key=lambda k: (-(quotas[k] - counts[k]), k))[:max(spare, 0)]:
        counts[k] += 1
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k, idx in groups.items():
        shuffled = rng.permutation(idx)
        val.append(shuffled[: counts[k]])
        train.append(shuffled[counts[k]:])
    if not sum(len(v) for v in val):
        raise GenreLabError(f"data.val_size={val_size} leaves no validation rows for {len(keys)} rows")
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def iterative_split(targets: np.ndarray, val_size: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded multi-label split by iterative stratification (Sechidis et al. 2011, through the
    iterative-stratification package), then made exact: ``round(val_size * N)`` validation rows.

    Iterative stratification keeps every genre's validation share close to ``val_size`` (on
    tmdb_movies_multilabel.csv: mean deviation 0.0004, against 0.005 for label combinations), but its
    validation set can be a few rows off the size asked for. The difference is moved one row at a time, each
    time the row whose move most lowers the sum of squared per-genre share gaps, so the total is exact and
    the balance barely moves.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit  # deferred: pulls in scikit-learn

    if not 0.0 < val_size < 1.0:
        raise GenreLabError(f"data.val_size={val_size} must be in (0, 1), e.g. 0.2 for a 20% validation split")
    targets = np.asarray(targets, dtype=np.int64)
    total = math.floor(val_size * len(targets) + 0.5)
    if total < 1:
        raise GenreLabError(f"data.val_size={val_size} leaves no validation rows for {len(targets)} rows")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_size, random_state=seed % 2**32)
    _, val_rows = next(splitter.split(np.zeros(len(targets)), targets))
    in_val = np.zeros(len(targets), dtype=bool)
    in_val[val_rows] = True
    wanted = val_size * targets.sum(axis=0)
    sizes = np.maximum(targets.sum(axis=0), 1)
    while in_val.sum() != total:
        surplus = in_val.sum() > total  # move a validation row to training, or the other way
        side = np.flatnonzero(in_val if surplus else ~in_val)
        share_gap = (targets[in_val].sum(axis=0) - wanted) / sizes  # each genre's validation share minus val_size
        # the move that most lowers the sum of squared share gaps: gap ∓ 1/size on each of the row's genres
        sign = 1.0 if surplus else -1.0
        gain = targets[side] @ (2 * sign * share_gap / sizes - 1 / sizes**2)
        in_val[side[int(np.argmax(gain))]] = not surplus
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)
