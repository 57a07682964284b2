"""folds.py and fold runs: k folds of the training rows, disjoint, covering them, stratified; the held-out rows
are every fold run's test set."""

from collections import Counter

import numpy as np
import pytest

from genre_lab.data.folds import dealt_folds, fold_ids
from genre_lab.data.movie_data import MovieData
from genre_lab.errors import GenreLabError
from tests.data.test_datamodule import make_dm


def fold_runs(folds: int, **settings) -> list[MovieData]:
    base = dict(make_dm(**settings).hparams)
    return [MovieData({**base, "folds": folds, "fold": i}) for i in range(folds)]


@pytest.mark.parametrize("folds", [2, 5])
def test_single_label_folds_cover_the_training_rows_once_each_genre_within_a_row_of_its_share(folds):
    plain = make_dm().data
    train_rows, held_out = plain.stage_rows["train"][1], plain.stage_rows["val"][1]
    runs = fold_runs(folds)
    validated = [run.stage_rows["val"][1] for run in runs]
    assert sorted(np.concatenate(validated).tolist()) == sorted(train_rows.tolist())  # each row in one fold
    for run, fold_rows in zip(runs, validated, strict=True):
        trained = run.stage_rows["train"][1]
        assert not set(trained) & set(fold_rows) and len(trained) + len(fold_rows) == len(train_rows)
        assert np.array_equal(run.stage_rows["test"][1], held_out)  # the held-out rows, never trained or tuned on
        per_genre = Counter(run.train_table.labels[i][0] for i in fold_rows)
        whole = Counter(run.train_table.labels[i][0] for i in train_rows)  # 32 rows of each of 10 genres
        assert all(abs(per_genre[g] - n / folds) < 1 for g, n in whole.items()), per_genre
    sizes = [len(rows) for rows in validated]
    assert max(sizes) - min(sizes) <= 1


def test_multi_label_folds_keep_every_genres_share(multilabel_csv):
    runs = fold_runs(4, train_csv=str(multilabel_csv), label_column="genres", multi_label=True)
    assert runs[0].split_method == "iterative"
    space = runs[0].label_space
    train_rows = make_dm(train_csv=str(multilabel_csv), label_column="genres", multi_label=True).data.stage_rows[
        "train"][1]
    whole = space.encode([runs[0].train_table.labels[i] for i in train_rows]).sum(axis=0)
    validated = [run.stage_rows["val"][1] for run in runs]
    assert sorted(np.concatenate(validated).tolist()) == sorted(train_rows.tolist())
    for fold_rows in validated:
        share = space.encode([runs[0].train_table.labels[i] for i in fold_rows]).sum(axis=0) / whole
        assert np.abs(share - 0.25).max() < 0.05, share


def test_folds_are_seeded_by_the_data_seed_and_dealt_evenly():
    keys = ["a"] * 7 + ["b"] * 5 + ["c"] * 3
    first, again = dealt_folds(keys, 3, seed=1), dealt_folds(keys, 3, seed=1)
    assert np.array_equal(first, again) and not np.array_equal(first, dealt_folds(keys, 3, seed=2))
    assert sorted(Counter(first).values()) == [5, 5, 5]
    for key, n in Counter(keys).items():
        counts = Counter(f for f, k in zip(first, keys, strict=True) if k == key)
        assert max(counts.values()) - min(counts.get(i, 0) for i in range(3)) <= 1, (key, n, counts)


@pytest.mark.parametrize(("folds", "fold", "message"), [
    (1, 0, r"data.folds=1 must be a whole number in \[2, 20\], e.g. data.folds=5"),
    (None, 0, r"data.fold=0 without data.folds"),
    (5, None, r"data.folds=5 without data.fold: .* -m data.folds=5 data.fold=0,1,2,3,4"),
    (5, 5, r"data.fold=5 must be a whole number from 0 to 4"),
    (3, "1", r"data.fold='1' must be a whole number"),
])
def test_bad_fold_settings_are_refused_with_the_fix(folds, fold, message):
    with pytest.raises(GenreLabError, match=message):
        MovieData({**dict(make_dm().hparams), "folds": folds, "fold": fold})


def test_more_folds_than_the_rarest_genre_has_rows_is_refused_naming_it(small_csv):
    """small.csv: 8 rows of each of 4 genres; after the 20 % split (6 rows) family and horror keep 6 for training,
    romance and scifi 7."""
    data = MovieData({**dict(make_dm(train_csv=str(small_csv)).hparams), "folds": 7, "fold": 0})
    with pytest.raises(GenreLabError, match=r"data.folds=7, but genre\(s\) \{'family': 6, 'horror': 6\} have "
                                            r"fewer training rows than folds .* Use data.folds=6 or fewer"):
        data.stage_rows  # noqa: B018
    assert len(fold_ids([["x"]] * 6 + [["y"]] * 6, 6, "combination", 0)) == 12  # as many as the rows: one each


def test_a_test_file_beside_folds_is_refused(small_csv):
    data = MovieData({**dict(make_dm(test_csv=str(small_csv)).hparams), "folds": 2, "fold": 0})
    with pytest.raises(GenreLabError, match=r"data.test_csv with data.folds=2: a fold run's test rows are the "
                                            r"held-out rows"):
        data.stage_rows  # noqa: B018
