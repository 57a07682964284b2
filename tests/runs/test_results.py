"""The one finish path: score -> val_probs.npz -> keep (what depends on the tuned rule) -> plots -> metrics.json."""

import json

import numpy as np
import pytest

from genre_lab.data.labels import LabelSpace
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, finish
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score
from genre_lab.scoring.thresholds import ThresholdTuner

GENRES = ("comedy", "drama", "horror")


def rows(seed: int, n: int = 60) -> StoredProbs:
    rng = np.random.default_rng(seed)
    targets = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)]
    probs = np.clip(0.25 * targets + rng.uniform(0, 0.5, (n, 3)), 0, 1).astype(np.float32)
    return StoredProbs(np.array([f"m{i}" for i in range(n)]), probs, targets, GENRES)


def test_finish_scores_stores_keeps_then_writes_metrics_last(tmp_path):
    val, test = rows(0), rows(1)
    tuner = ThresholdTuner(min_positives=0)
    seen = {}

    def keep(scored):
        seen["metrics_written"] = RunLayout(tmp_path).metrics.exists()  # keep runs before the run is "finished"
        seen["decoder"] = scored.decoder
        return {"kept": True}

    report = Report(tmp_path, "val", "t", [], plots=False)
    metrics, scored = finish(val, LabelSpace(GENRES, False), Decoder(0.5), tuner, report, {"fact": 1}, test, keep)
    expected = score(val.probs, val.targets, Decoder(0.5), GENRES, "val", ThresholdTuner(min_positives=0))
    assert metrics["val/f1_micro"] == pytest.approx(expected.metrics["val/f1_micro"])
    assert metrics["decoder"] == expected.metrics["decoder"] != Decoder(0.5).to_dict()  # tuned on these rows
    tested = score(test.probs, test.targets, expected.decoder, GENRES, "test").metrics  # the rule tuned on val
    assert metrics["test/f1_micro"] == pytest.approx(tested["test/f1_micro"])
    assert seen == {"metrics_written": False, "decoder": scored.decoder} and metrics["kept"] and metrics["fact"] == 1
    layout = RunLayout(tmp_path)
    assert json.loads(layout.metrics.read_text()) == json.loads(json.dumps(metrics))
    stored = StoredProbs.load(layout.val_probs)
    assert (stored.probs == val.probs).all() and list(stored.movie_ids) == list(val.movie_ids)
    stored_test = StoredProbs.load(layout.test_probs)  # a fold run's held-out rows, for its cross-validation
    assert (stored_test.probs == test.probs).all() and list(stored_test.movie_ids) == list(test.movie_ids)
    assert layout.per_class.read_text().count("\n") == 1 + len(GENRES) and not list(tmp_path.glob("*.png"))


def test_eval_keeps_no_probabilities_and_plots_when_asked(tmp_path):
    report = Report(tmp_path, "eval", "t", [], keep_probs=False)
    metrics, _ = finish(rows(2), LabelSpace(GENRES, False), Decoder(0.5), None, report)
    assert "eval/f1_micro" in metrics and "thresholds" not in metrics  # no tuner: the rule as given
    assert not RunLayout(tmp_path).val_probs.exists() and list(tmp_path.glob("*.png"))
