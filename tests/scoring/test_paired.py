"""The paired bootstrap (genre-lab compare A B --paired) against a direct computation."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from genre_lab.errors import GenreLabError
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.paired import RowCounts, paired_bootstrap, resample_indices, stacked


def example(seed: int, rows: int = 60, genres: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = np.zeros((rows, genres), dtype=np.uint8)
    targets[np.arange(rows), rng.integers(0, genres, rows)] = 1
    probs = np.clip(0.4 * targets + 0.6 * rng.random((rows, genres)), 0, 1).astype(np.float32)
    return probs, targets, (probs > 0.5).astype(np.uint8)


def direct(probs, targets, decisions, draw) -> dict[str, float]:
    """The figures of one draw, computed from the drawn rows themselves."""
    p, t, d = probs[draw], targets[draw], decisions[draw]
    present = t.sum(axis=0) > 0
    return {"f1_micro": f1_score(t, d, average="micro", zero_division=0),
            "f1_macro": f1_score(t[:, present], d[:, present], average="macro", zero_division=0),
            "top1_accuracy": float(t[np.arange(len(t)), p.argmax(axis=1)].mean())}


def test_the_interval_matches_a_direct_computation_on_the_same_draws():
    a, b = example(0), example(0)
    b = (b[0], b[1], (b[0] > 0.45).astype(np.uint8))  # B: a lower threshold on the same rows
    table = paired_bootstrap(RowCounts.of(*a), RowCounts.of(*b), resamples=200, seed=7).set_index("figure")
    draws = resample_indices(len(a[0]), 200, 7)
    for figure in ("f1_micro", "f1_macro", "top1_accuracy"):
        diffs = np.array([direct(*b, d)[figure] - direct(*a, d)[figure] for d in draws])
        low, high = np.percentile(diffs, [2.5, 97.5])
        assert table.loc[figure, "95% low"] == pytest.approx(low, abs=1e-9)
        assert table.loc[figure, "95% high"] == pytest.approx(high, abs=1e-9)
        assert table.loc[figure, "B wins"] == pytest.approx((diffs > 0).mean())
        whole = np.arange(len(a[0]))
        assert table.loc[figure, "B - A"] == pytest.approx(direct(*b, whole)[figure] - direct(*a, whole)[figure])
    assert table.loc["f1_micro", "B - A"] != 0  # the two rules differ on these rows


def test_a_run_against_itself_differs_by_exactly_zero():
    a = RowCounts.of(*example(3))
    table = paired_bootstrap(a, a, resamples=1000, seed=0)
    assert (table[["B - A", "95% low", "95% high", "B wins"]].to_numpy() == 0).all()
    assert (table["A"] == table["B"]).all() and (table["A"] > 0).all()


def test_runs_scored_on_different_rows_are_refused():
    probs, targets, _ = example(1)
    ids = np.array([f"m{i}" for i in range(len(probs))])
    a = StoredProbs(ids, probs, targets, ("a", "b", "c", "d"))
    shuffled = np.random.default_rng(0).permutation(len(ids))
    b = StoredProbs(ids[shuffled], probs[shuffled], targets[shuffled], a.labels)
    np.testing.assert_array_equal(a.aligned_to(b, ("A", "B")).probs, b.probs)  # same rows, other order: aligned
    other = StoredProbs(np.array([f"x{i}" for i in range(len(ids))]), probs, targets, a.labels)
    with pytest.raises(GenreLabError, match="different validation rows"):
        a.aligned_to(other, ("A", "B"))
    with pytest.raises(GenreLabError, match="different genres"):
        a.aligned_to(StoredProbs(ids, probs, targets, ("a", "b", "c", "e")), ("A", "B"))


def test_seed_blocks_resample_the_same_rows_in_every_run_and_pool_their_counts():
    """Two seeds per side: a draw takes the same rows from both runs; the figures are those of the pooled rows."""
    a1, a2, b1, b2 = example(0), example(0), example(0), example(0)
    a2 = (a2[0], a2[1], (a2[0] > 0.55).astype(np.uint8))
    b1, b2 = [(b[0], b[1], (b[0] > cut).astype(np.uint8)) for b, cut in ((b1, 0.45), (b2, 0.4))]
    side_a = stacked([RowCounts.of(*a1), RowCounts.of(*a2)])
    side_b = stacked([RowCounts.of(*b1), RowCounts.of(*b2)])
    table = paired_bootstrap(side_a, side_b, resamples=100, seed=3, blocks=2).set_index("figure")
    draws = resample_indices(len(a1[0]), 100, 3)

    def pooled(run1, run2, draw):
        return direct(*[np.concatenate([x[draw], y[draw]]) for x, y in zip(run1, run2, strict=True)],
                      np.arange(2 * len(draw)))["f1_micro"]

    diffs = np.array([pooled(b1, b2, d) - pooled(a1, a2, d) for d in draws])
    assert table.loc["f1_micro", "95% low"] == pytest.approx(np.percentile(diffs, 2.5), abs=1e-9)
    assert table.loc["f1_micro", "B wins"] == pytest.approx((diffs > 0).mean())
    everything = np.arange(len(a1[0]))
    assert table.loc["f1_micro", "A"] == pytest.approx(pooled(a1, a2, everything))
