"""Calibration: make a run's probabilities mean what they say, without changing what it ranks first.

``calibration=temperature`` (``Temperature``) fits, after training, a temperature T to the validation logits by
minimising the negative log-likelihood (LBFGS on log T): one T for a softmax (``ce``) run, one per genre for a
sigmoid (``bce``) run. Probabilities are then ``softmax(z / T)`` or ``sigmoid(z / T)`` everywhere the run is used
(eval, predict, ensembles, export, serve): the fitted entry lives in ``best.ckpt`` (``checkpoint["calibration"]``)
and in every export. ``calibration=none`` (``NoCalibration``) keeps T = 1. Thresholds are tuned after calibration.

How well calibrated probabilities are is measured by ``scoring.metrics`` (``ece``, ``ece_genres``, ``brier``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from genre_lab.errors import require_int
from genre_lab.scoring.calibration_entry import METHOD, temperatures

# temperatures are kept in this range: a genre whose validation rows all sit on one side of the threshold would
# otherwise drive its T to 0 or infinity (probabilities of exactly 0 and 1)
T_RANGE = (0.05, 20.0)


def scale(logits: torch.Tensor, calibration: Mapping[str, Any] | None) -> torch.Tensor:
    """``logits / T`` (broadcast over genres), or the logits themselves when uncalibrated."""
    found = temperatures(calibration)
    if found is None:
        return logits
    return logits / torch.tensor(found, dtype=logits.dtype, device=logits.device)


@dataclass
class NoCalibration:
    """``calibration=none``: probabilities as the network gives them."""

    def fit(self, logits: np.ndarray, targets: np.ndarray, objective: str) -> dict[str, Any] | None:
        return None


@dataclass
class Temperature:
    """``calibration=temperature``: temperature scaling (Guo et al. 2017), per genre for sigmoid runs."""

    min_positives: int = 10  # a genre with fewer validation positives keeps T = 1 (too few rows to fit)
    max_iter: int = 100

    def __post_init__(self) -> None:
        require_int(self.min_positives, "calibration.min_positives", 0, 10)
        require_int(self.max_iter, "calibration.max_iter", 1, 100)

    def fit(self, logits: np.ndarray, targets: np.ndarray, objective: str) -> dict[str, Any]:
        """The calibration entry for these validation ``logits`` and multi-hot ``targets``."""
        z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(targets), dtype=torch.float64)
        if objective == "ce":
            found = [fit_log_t(z, y, 1, softmax_nll, self.max_iter)[0]]
        else:
            fitted = fit_log_t(z, y, z.shape[1], sigmoid_nll, self.max_iter)
            enough = (y.sum(0) >= max(self.min_positives, 1)) & (y.sum(0) < len(y))
            found = [t if ok else 1.0 for t, ok in zip(fitted, enough.tolist(), strict=True)]
        return {"method": METHOD, "temperature": found, "fitted_on_rows": len(z)}


def softmax_nll(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z, y / y.sum(-1, keepdim=True).clamp(min=1))


def sigmoid_nll(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # summed over genres: each genre's temperature minimises its own mean NLL (the problem separates)
    return F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(0).sum()


def fit_log_t(z: torch.Tensor, y: torch.Tensor, count: int, nll: Any, max_iter: int) -> list[float]:
    """``count`` temperatures minimising ``nll(z / T, y)``, found by LBFGS on log T (T stays positive)."""
    log_t = torch.zeros(count, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nll(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    low, high = np.log(T_RANGE)
    return [float(np.exp(v)) for v in log_t.detach().clamp(low, high).tolist()]
