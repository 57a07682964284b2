"""Temperature scaling recovers a known temperature, keeps T = 1 where it cannot fit, and the calibration figures
(ECE, reliability bins, Brier) agree with direct computations and scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from genre_lab.errors import GenreLabError
from genre_lab.scoring.calibration import NoCalibration, Temperature, scale, temperatures
from genre_lab.scoring.metrics import ECE_BINS, calibration_figures, reliability_bins


def softmax_rows(rng, n=4000, genres=5):
    """Logits and one-hot labels drawn from softmax(logits): calibrated at T = 1 by construction."""
    z = rng.normal(0, 2, (n, genres))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.eye(genres)[[rng.choice(genres, p=row) for row in p]]
    return z, y


def test_one_temperature_for_softmax_runs_is_recovered_and_leaves_the_top_genre_alone():
    rng = np.random.default_rng(0)
    z, y = softmax_rows(rng)
    fitted = Temperature().fit(2.5 * z, y, "ce")  # an over-confident network: its logits 2.5x too large
    assert fitted["method"] == "temperature" and fitted["fitted_on_rows"] == len(z)
    assert fitted["temperature"] == [pytest.approx(2.5, rel=0.08)]
    before = torch.softmax(torch.from_numpy(2.5 * z), -1)
    after = torch.softmax(scale(torch.from_numpy(2.5 * z), fitted), -1)
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    assert calibration_figures(after.numpy(), y)["ece"] < calibration_figures(before.numpy(), y)["ece"] / 2


def test_one_temperature_per_genre_for_sigmoid_runs_and_t_1_where_a_genre_has_too_few_positives():
    rng = np.random.default_rng(1)
    z = rng.normal(-1, 2, (5000, 3))
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)
    y[:, 2] = 0
    y[:5, 2] = 1  # 5 positives: under min_positives=10
    fitted = Temperature(min_positives=10).fit(z * np.array([0.5, 3.0, 3.0]), y, "bce")
    t = fitted["temperature"]
    assert t[0] == pytest.approx(0.5, rel=0.1) and t[1] == pytest.approx(3.0, rel=0.1) and t[2] == 1.0


def test_no_calibration_and_bad_settings():
    assert NoCalibration().fit(np.zeros((3, 2)), np.eye(2)[[0, 1, 0]], "ce") is None
    logits = torch.randn(4, 2)
    assert torch.equal(scale(logits, None), logits)
    assert torch.allclose(scale(logits, {"method": "temperature", "temperature": [2.0, 4.0]}),
                          logits / torch.tensor([2.0, 4.0]))
    with pytest.raises(GenreLabError, match="not one this version applies"):
        temperatures({"method": "isotonic", "bins": []})
    with pytest.raises(GenreLabError, match="calibration.min_positives"):
        Temperature(min_positives=-1)
    with pytest.raises(GenreLabError, match="calibration.max_iter"):
        Temperature(max_iter=0)


def direct_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE as its definition reads: bins (a, b] of equal width (0 in the first), row-weighted |accuracy - mean|."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high) | ((low == 0) & (confidence == 0))
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return total / len(confidence)


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_brier_and_reliability_bins_agree_with_direct_computations_and_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(6) * 0.5, size=700)
    targets = (rng.random((700, 6)) < 0.25).astype(np.uint8)
    targets[np.arange(700), rng.integers(0, 6, 700)] = 1
    figures = calibration_figures(probs, targets)
    top = probs.argmax(1)
    confidence, correct = probs[np.arange(700), top], targets[np.arange(700), top].astype(float)
    assert figures["ece"] == pytest.approx(direct_ece(confidence, correct), abs=1e-6)
    assert figures["ece_genres"] == pytest.approx(direct_ece(probs.ravel(), targets.ravel().astype(float)), abs=1e-6)
    assert figures["brier"] == pytest.approx(np.mean([np.sum((p - t) ** 2) for p, t in zip(probs, targets,
                                                                                          strict=True)]))
    points = reliability_bins(confidence, correct)
    observed, forecast = calibration_curve(correct, confidence, n_bins=ECE_BINS, strategy="uniform")
    np.testing.assert_allclose(points["observed"], observed)
    np.testing.assert_allclose(points["forecast"], forecast)
    assert points["rows"].sum() == 700
