"""Is run B better than run A? A paired bootstrap over the validation rows both runs were scored on.

Each resample draws the validation rows with replacement (seeded), scores both runs' stored decisions on the
same draw and keeps the difference B − A of micro-F1, macro-F1 (over the genres present in the draw, as
everywhere in genre_lab) and top-1 accuracy. Reported: both figures on all rows, the difference, its 95 %
percentile interval and the share of resamples where B is ahead. Each run decides with its own rule from
``metrics.json`` (tuned on these rows, for both, so equally optimistic). The rows are a run's
``val_probs.npz``; runs scored on different rows are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

FIGURES = ("f1_micro", "f1_macro", "top1_accuracy")


@dataclass
class RowCounts:
    """Per row: true/false positives and false negatives per genre ``[rows, genres]``, and top-1 hits."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    top1: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray, targets: np.ndarray, decisions: np.ndarray) -> RowCounts:
        truth, said = targets.astype(bool), decisions.astype(bool)
        hit = truth[np.arange(len(probs)), probs.argmax(axis=1)]
        return cls((said & truth).astype(np.int64), (said & ~truth).astype(np.int64),
                   (~said & truth).astype(np.int64), hit.astype(np.int64))

    def figures(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The figures of every draw: ``weights`` ``[draws, rows]`` counts how often each row was drawn."""
        tp, fp, fn = weights @ self.tp, weights @ self.fp, weights @ self.fn
        denom = 2 * tp + fp + fn
        per_genre = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
        present = (tp + fn) > 0
        micro_denom = denom.sum(axis=1)
        return {
            "f1_micro": np.divide(2 * tp.sum(axis=1), micro_denom, out=np.zeros(len(weights)), where=micro_denom > 0),
            "f1_macro": (per_genre * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1),
            "top1_accuracy": (weights @ self.top1) / weights.sum(axis=1),
        }


def stacked(counts: list[RowCounts]) -> RowCounts:
    """Several runs' counts as one, row blocks in the given order (for ``paired_bootstrap(blocks=…)``)."""
    return RowCounts(*[np.concatenate([getattr(c, f.name) for c in counts]) for f in fields(RowCounts)])


def resample_indices(rows: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, rows]`` row indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))


def draw_weights(indices: np.ndarray, rows: int) -> np.ndarray:
    return np.stack([np.bincount(draw, minlength=rows) for draw in indices])


def paired_bootstrap(a: RowCounts, b: RowCounts, resamples: int = 2000, seed: int = 0,
                     blocks: int = 1) -> pd.DataFrame:
    """One row per figure: A, B, B − A on all rows, the 95 % interval of B − A, share of draws where B wins.

    ``blocks`` > 1: each side is that many runs (seeds) on the same rows, stacked in the same order; a draw takes
    the same rows from every run, so the figures pool the seeds and the interval reflects the rows' sampling."""
    rows = len(a.top1) // blocks
    weights = np.tile(draw_weights(resample_indices(rows, resamples, seed), rows), blocks)
    everything = np.ones((1, rows * blocks), dtype=np.int64)
    full_a, full_b = a.figures(everything), b.figures(everything)
    drawn_a, drawn_b = a.figures(weights), b.figures(weights)
    table = []
    for name in FIGURES:
        diff = drawn_b[name] - drawn_a[name]
        low, high = np.percentile(diff, [2.5, 97.5])
        table.append({"figure": name, "A": float(full_a[name][0]), "B": float(full_b[name][0]),
                      "B - A": float(full_b[name][0] - full_a[name][0]), "95% low": float(low),
                      "95% high": float(high), "B wins": float((diff > 0).mean())})
    return pd.DataFrame(table)
