import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score

from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import BestThresholdF1, GenreMetrics, flatten, per_class_rows, summarize, threshold_grid
from genre_lab.scoring.thresholds import threshold_curves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n, c = 300, 6
    target = (rng.random((n, c)) < 0.3).astype(int)
    target[np.arange(n), rng.integers(0, c, n)] = 1  # every row has a genre
    probs = np.clip(0.35 * target + 0.65 * rng.random((n, c)), 0, 1).astype(np.float32)
    decoder = Decoder(threshold=0.5)
    preds = decoder(torch.from_numpy(probs)).numpy()

    metrics = GenreMetrics(c)
    for chunk in np.array_split(np.arange(n), 7):  # accumulated over batches like an epoch
        p = torch.from_numpy(probs[chunk])
        metrics.update(p, decoder(p), torch.from_numpy(target[chunk]))
    got = metrics.compute()

    assert got["f1_micro"] == pytest.approx(f1_score(target, preds, average="micro"), abs=1e-6)
    assert got["f1_macro"] == pytest.approx(f1_score(target, preds, average="macro"), abs=1e-6)
    assert got["auroc_micro"] == pytest.approx(roc_auc_score(target, probs, average="micro"), abs=1e-5)
    assert got["auroc_macro"] == pytest.approx(roc_auc_score(target, probs, average="macro"), abs=1e-5)
    assert got["exact_match"] == pytest.approx(accuracy_score(target, preds), abs=1e-6)
    top1 = target[np.arange(n), probs.argmax(axis=1)].mean()
    assert got["top1_accuracy"] == pytest.approx(top1, abs=1e-6)
    p, r, f, s = precision_recall_fscore_support(target, preds, average=None, zero_division=0)
    np.testing.assert_allclose(got["precision"], p, atol=1e-6)
    np.testing.assert_allclose(got["recall"], r, atol=1e-6)
    np.testing.assert_allclose(got["f1"], f, atol=1e-6)
    np.testing.assert_array_equal(got["support"], s)

    names = [f"g{i}" for i in range(c)]
    flat = flatten(got, names, "val")
    assert flat["val/f1/g2"] == pytest.approx(f[2], abs=1e-6)
    rows = per_class_rows(got, names)
    assert rows[3]["support"] == s[3] and rows[3]["genre"] == "g3"


def test_top1_is_plain_accuracy_on_single_label_data():
    probs = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.3, 0.1], [0.1, 0.2, 0.6]])
    target = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 1]])
    metrics = GenreMetrics(3)
    metrics.update(probs, Decoder()(probs), target)
    assert metrics.compute()["top1_accuracy"] == pytest.approx(2 / 3)


def test_macro_averages_are_over_the_genres_present_without_warnings():
    """3 of 10 genres in the data, predicted perfectly: macro F1 and AUROC 1.0, not 0.3."""
    rng = np.random.default_rng(0)
    target = np.zeros((60, 10), dtype=int)
    target[np.arange(60), np.arange(60) % 3] = 1
    target[::4, 3] = 1  # a fourth genre on some rows, decided badly
    probs = np.clip(0.8 * target + 0.15 * rng.random(target.shape), 0, 1).astype(np.float32)
    probs[:, 3] = rng.random(60)
    decisions = (probs > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics' "No positive samples" warning must not escape
        flat, rows = summarize(probs, target, decisions, [f"g{i}" for i in range(10)], "eval")
    present = target.sum(0) > 0
    assert flat["eval/genres_present"] == 4
    assert flat["eval/f1_macro"] == pytest.approx(f1_score(target[:, present], decisions[:, present],
                                                           average="macro"), abs=1e-6)
    assert flat["eval/auroc_macro"] == pytest.approx(roc_auc_score(target[:, present], probs[:, present],
                                                                   average="macro"), abs=1e-5)
    assert [r["f1"] for r in rows[:3]] == [1.0, 1.0, 1.0]
    curve = threshold_curves(probs, target, np.array([0.5]))["f1_macro"]  # threshold tuning and its plot agree
    assert curve[0] == pytest.approx(flat["eval/f1_macro"], abs=1e-6)


def test_best_threshold_f1_is_the_best_global_threshold_found_by_scikit_learn():
    """Accumulated over batches, it equals the best micro/macro F1 over the tuner's grid, computed directly."""
    rng = np.random.default_rng(3)
    target = (rng.random((250, 5)) < 0.25).astype(int)
    target[:, 4] = 0  # an absent genre: left out of the macro average, as everywhere
    probs = (0.2 * target + 0.45 * rng.random(target.shape)).astype(np.float32)  # all below 0.65
    metric = BestThresholdF1(5)
    for chunk in np.array_split(np.arange(250), 6):
        metric.update(torch.from_numpy(probs[chunk]), torch.from_numpy(target[chunk]))
    got = metric.compute()

    grid = threshold_grid(0.01)
    micro = [f1_score(target, probs > t, average="micro", zero_division=0) for t in grid]
    macro = [f1_score(target[:, :4], probs[:, :4] > t, average="macro", zero_division=0) for t in grid]
    assert float(got["f1_micro_tuned"]) == pytest.approx(max(micro), abs=1e-6)
    assert float(got["f1_macro_tuned"]) == pytest.approx(max(macro), abs=1e-6)
    assert max(micro) > f1_score(target, probs > 0.5, average="micro")  # 0.5 is not the best threshold here
    metric.reset()
    metric.update(torch.from_numpy(probs[:10]), torch.from_numpy(target[:10]))
    assert int(metric.tp.sum() + metric.fn.sum()) == target[:10].sum() * len(grid)  # reset cleared the counts
