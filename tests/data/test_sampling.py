from collections import Counter

import numpy as np
import pytest

from genre_lab.data.sampling import RARE, sample_per_class, split_keys, stratified_split
from genre_lab.errors import GenreLabError

KEYS = ["a"] * 50 + ["b"] * 30 + ["c"] * 11 + ["d"] * 9


def test_frac_takes_exactly_that_share_of_each_class():
    picked = sample_per_class(KEYS, frac=0.1, seed=1)
    counts = Counter(KEYS[i] for i in picked)
    assert counts == {"a": 5, "b": 3, "c": 1, "d": 1}  # round(1.1) = 1, round(0.9) = 1
    assert len(set(picked)) == len(picked)


def test_per_class_takes_exact_counts_and_is_seeded():
    picked = sample_per_class(KEYS, per_class=9, seed=3)
    assert Counter(KEYS[i] for i in picked) == {"a": 9, "b": 9, "c": 9, "d": 9}
    assert np.array_equal(picked, sample_per_class(KEYS, per_class=9, seed=3))
    assert not np.array_equal(picked, sample_per_class(KEYS, per_class=9, seed=4))


def test_sampling_errors_explain_the_limit():
    with pytest.raises(GenreLabError, match=r"fewer rows: \{'d': 9\}.*at most 9"):
        sample_per_class(KEYS, per_class=10)
    with pytest.raises(GenreLabError, match=r"\(0, 1\]"):
        sample_per_class(KEYS, frac=1.5)
    with pytest.raises(GenreLabError, match="exactly one"):
        sample_per_class(KEYS, frac=0.5, per_class=3)


def test_split_is_stratified_and_exact():
    train, val = stratified_split(KEYS, val_size=0.2, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert not set(train) & set(val)
    val_counts = Counter(KEYS[i] for i in val)
    for key, total in Counter(KEYS).items():
        assert abs(val_counts[key] - 0.2 * total) < 1, (key, val_counts[key])
    again = stratified_split(KEYS, val_size=0.2, seed=0)
    assert np.array_equal(val, again[1])


def test_multilabel_split_keys_fall_back_for_rare_combinations():
    labels = [["a", "b"]] * 10 + [["a", "c"]] * 2 + [["a"]] * 4 + [["c", "d"]] * 2
    keys = split_keys(labels, val_size=0.2)  # a stratum needs 5 rows
    assert keys[:10] == ["a|b"] * 10
    assert keys[10:16] == ["a"] * 6  # rare a|c merged with the 4 plain "a" rows into "a"
    assert keys[16:] == [RARE] * 2
    train, val = stratified_split(keys, 0.2, seed=0)
    assert len(val) == round(0.2 * len(labels))


def test_split_needs_two_rows_per_genre():
    with pytest.raises(GenreLabError, match=r"fewer than 2 rows.*\{'d': 1\}.*one for each side.*data.val_csv"):
        split_keys([["a"]] * 5 + [["b"]] * 5 + [["d"]], val_size=0.2)
