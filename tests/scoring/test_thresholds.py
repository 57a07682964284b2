import numpy as np
import pytest

from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.thresholds import ThresholdTuner, rule_score, threshold_curves


def random_case(seed: int, n: int = 400, c: int = 6):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < rng.uniform(0.05, 0.4, c)).astype(np.int64)
    probs = np.clip(0.3 * targets + rng.random((n, c)) * 0.6, 0.001, 0.999).astype(np.float32)
    return probs, targets


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("metric", ["f1_micro", "f1_macro"])
def test_tuned_rule_is_never_worse_than_the_fixed_one(seed, metric):
    probs, targets = random_case(seed)
    fixed = Decoder(0.5)
    tuner = ThresholdTuner(metric=metric)
    tuned = tuner.tune(probs, targets, fixed)
    assert rule_score(probs, targets, tuned, metric) >= rule_score(probs, targets, fixed, metric)
    assert tuner.report["chosen"] in ("fixed", "global", "per_class")
    assert tuner.report["scores"][tuner.report["chosen"]] == pytest.approx(rule_score(probs, targets, tuned, metric))


def test_genres_with_few_positives_keep_the_global_threshold():
    probs, targets = random_case(1, n=300, c=4)
    targets[:, 3] = 0
    targets[:4, 3] = 1  # 4 positives < min_positives
    tuner = ThresholdTuner(min_positives=10)
    tuner.tune(probs, targets, Decoder(0.5))
    per_class = tuner.report["per_class_thresholds"]
    assert per_class[3] == tuner.report["global_threshold"]


def test_threshold_curves_match_the_shared_metrics():
    probs, targets = random_case(2)
    grid = np.array([0.2, 0.35, 0.5, 0.8])
    curves = threshold_curves(probs, targets, grid)
    for i, t in enumerate(grid):
        for metric in ("f1_micro", "f1_macro"):
            assert curves[metric][i] == pytest.approx(rule_score(probs, targets, Decoder(float(t)), metric), abs=1e-6)


def test_top_k_decoding_is_left_alone():
    probs, targets = random_case(3)
    base = Decoder(top_k=2)
    assert ThresholdTuner().tune(probs, targets, base) is base
