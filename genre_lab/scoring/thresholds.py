"""Tune decision thresholds on validation probabilities.

Steps: (1) the best single global threshold on a grid; (2) starting there, one pass of per-genre
thresholds, each chosen with the others fixed; a genre with fewer than ``min_positives`` validation
positives keeps the global value (a handful of positives would let its threshold fit noise);
(3) the candidate rules — the training decoder (usually 0.5), the global one, the per-genre one — are
scored with the same metrics as everywhere else and the best wins, ties going to the simpler rule.
So the tuned rule is never worse on validation than the fixed one. Validation scores of a tuned rule
are optimistic (chosen on the same rows); report test figures where a test set exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from genre_lab.errors import GenreLabError, is_number, require_int
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import f1_curves, f1_from_counts, summarize, threshold_grid

OBJECTIVES = ("f1_micro", "f1_macro")


def rule_score(probs: np.ndarray, targets: np.ndarray, decoder: Decoder, metric: str) -> float:
    """``metric`` of ``decoder``'s decisions, computed by the shared metric builder."""
    names = [str(i) for i in range(probs.shape[1])]
    flat, _ = summarize(probs, targets, decoder.decide(probs), names, "x")
    return flat[f"x/{metric}"]


def _counts(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per genre and grid value: true positives, false positives, false negatives ``[C, T]``."""
    above = probs[:, :, None] > grid[None, None, :]
    pos = targets.astype(bool)[:, :, None]
    tp = (above & pos).sum(axis=0)
    fp = (above & ~pos).sum(axis=0)
    fn = (~above & pos).sum(axis=0)
    return tp, fp, fn


def threshold_curves(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Micro and macro F1 of one global threshold, for each value of ``grid``."""
    return f1_curves(*_counts(probs, targets, grid))


@dataclass
class ThresholdTuner:
    """Pick thresholds maximising ``metric`` (``f1_micro`` or ``f1_macro``) on validation data."""

    metric: str = "f1_micro"
    min_positives: int = 10
    grid_step: float = 0.01
    report: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.metric not in OBJECTIVES:
            raise GenreLabError(f"tuning.metric={self.metric!r}: choose one of {list(OBJECTIVES)}")
        if not is_number(self.grid_step) or not 0.0 < self.grid_step < 0.5:
            raise GenreLabError(f"tuning.grid_step={self.grid_step!r} must be in (0, 0.5), e.g. 0.01")
        require_int(self.min_positives, "tuning.min_positives", 0, 10)

    @property
    def grid(self) -> np.ndarray:
        return threshold_grid(self.grid_step)

    def tune(self, probs: np.ndarray, targets: np.ndarray, base: Decoder) -> Decoder:
        """The best of: ``base`` as is, a tuned global threshold, tuned per-genre thresholds."""
        if base.top_k is not None:
            self.report = {"chosen": "fixed", "reason": "top_k decoding has no thresholds"}
            return base
        grid = self.grid
        tp, fp, fn = _counts(probs, targets, grid)
        curve = f1_curves(tp, fp, fn)[self.metric]
        best_global = float(grid[int(np.argmax(curve))])
        per_class = self._per_class(tp, fp, fn, grid, int(np.argmax(curve)), targets.sum(0))
        candidates = {
            "fixed": base,
            "global": replace(base, threshold=best_global),
            "per_class": replace(base, threshold=per_class),
        }
        scores = {name: rule_score(probs, targets, d, self.metric) for name, d in candidates.items()}
        chosen = max(scores, key=lambda name: (round(scores[name], 9), -list(candidates).index(name)))
        self.report = {
            "metric": self.metric, "chosen": chosen, "scores": scores, "global_threshold": best_global,
            "per_class_thresholds": per_class, "min_positives": self.min_positives,
            "fixed_threshold": base.threshold,
        }
        return candidates[chosen]

    def _per_class(self, tp, fp, fn, grid, start: int, positives: np.ndarray) -> list[float]:
        """One coordinate-ascent pass from the global threshold; rare genres keep the global value."""
        chosen = np.full(tp.shape[0], start)
        for c in range(tp.shape[0]):
            if positives[c] < self.min_positives:
                continue
            if self.metric == "f1_macro":
                chosen[c] = int(np.argmax(f1_from_counts(tp[c], fp[c], fn[c])))
                continue
            rest = np.arange(tp.shape[0]) != c
            others = [m[rest, chosen[rest]].sum() for m in (tp, fp, fn)]
            curve = f1_from_counts(others[0] + tp[c], others[1] + fp[c], others[2] + fn[c])
            chosen[c] = int(np.argmax(curve))
        return [float(grid[i]) for i in chosen]
