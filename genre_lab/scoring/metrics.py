"""The one metric builder and the one scoring path (``score``), used by training (train/val/test epochs and the
final figures), eval and bench.

Threshold-dependent metrics (F1, exact match, per-class P/R/F1) are fed the decoder's 0/1
decisions, so tuned or per-class thresholds count everywhere; ranking metrics (AUROC, top-1) are
fed probabilities. Everything is accumulated on the device and computed at epoch end.

Macro averages are over the genres present in the data (support > 0; for AUROC, genres with both positive
and negative rows): a genre with no rows has no F1 or AUROC to average, and counting it as 0 would report
e.g. macro-F1 0.30 for perfect predictions on 3 of 10 genres. ``genres_present`` says how many were averaged.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryCalibrationError,
    MultilabelAUROC,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

from genre_lab.scoring.figure_names import HEADLINE, PER_CLASS  # noqa: F401  (HEADLINE: re-exported)


@contextmanager
def quiet_undefined() -> Iterator[None]:
    """Silence torchmetrics' warnings about genres without positive (or negative) rows: their AUROC and PR
    curves are undefined by nature (a genre absent from the data), and macro averages leave them out."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"No (positive|negative) samples")
        yield


class TopOneAccuracy(Metric):
    """Share of rows whose most probable genre is one of their true genres.

    On single-label data this is plain accuracy, comparable with published single-label results.
    """

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        top = probs.argmax(dim=-1, keepdim=True)
        self.hits += target.gather(-1, top).sum().long()
        self.total += target.shape[0]

    def compute(self) -> torch.Tensor:
        return self.hits.float() / self.total.clamp(min=1)


def threshold_grid(step: float) -> np.ndarray:
    """Global thresholds ``step, 2·step, …`` below 1: the tuner's grid, and the per-epoch tuned F1's."""
    return np.round(np.arange(step, 1.0 - 1e-9, step), 6)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.broadcast(tp, denom).shape), where=denom > 0)


def f1_curves(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Micro and macro F1 for each global threshold, from per-genre counts ``[C, T]``."""
    present = (tp + fn)[:, 0] > 0  # macro over the genres present, as GenreMetrics averages
    per_genre = f1_from_counts(tp, fp, fn)[present] if present.any() else np.zeros((1, tp.shape[1]))
    return {"f1_micro": f1_from_counts(tp.sum(0), fp.sum(0), fn.sum(0)), "f1_macro": per_genre.mean(0)}


class BestThresholdF1(Metric):
    """Micro and macro F1 at the best single global threshold (``f1_micro_tuned``, ``f1_macro_tuned``).

    The per-epoch counterpart of the tuned final figures (the tuner's first step, on the same grid): what
    picks the best checkpoint and what a pruned trial is compared by. At the fixed 0.5 an early epoch often
    has no probability above it and scores 0, however well it ranks the genres. Counts per genre and
    threshold are summed across batches and ranks, so it costs ``[C, T]`` integers, not the probabilities.
    """

    full_state_update = False

    def __init__(self, num_labels: int, grid_step: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.grid: torch.Tensor
        self.register_buffer("grid", torch.from_numpy(threshold_grid(grid_step)).float(), persistent=False)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, torch.zeros(num_labels, len(self.grid), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        above = probs.float().unsqueeze(-1) > self.grid
        positive = target.bool().unsqueeze(-1)
        self.tp += (above & positive).sum(0)
        self.fp += (above & ~positive).sum(0)
        self.fn += (~above & positive).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        curves = f1_curves(*(count.cpu().numpy() for count in (self.tp, self.fp, self.fn)))
        return {f"{key}_tuned": torch.tensor(float(curve.max())) for key, curve in curves.items()}


class GenreMetrics(nn.Module):
    """Headline and per-class metrics for one stage (one instance per stage: no shared state)."""

    def __init__(self, num_labels: int, sync_on_compute: bool = True) -> None:
        """``sync_on_compute=False`` for whole-dataset arrays held by one process (no cross-rank sync)."""
        super().__init__()
        # validate_args=False: the input checks (value ranges via unique/any) would sync the GPU every
        # training step; our inputs are 0/1 decisions and probabilities by construction.
        n, kw = num_labels, {"sync_on_compute": sync_on_compute, "validate_args": False}
        self.decided = MetricCollection({
            "f1_micro": MultilabelF1Score(n, average="micro", **kw),
            "exact_match": MultilabelExactMatch(n, **kw),
            "precision": MultilabelPrecision(n, average="none", **kw),
            "recall": MultilabelRecall(n, average="none", **kw),
            "f1": MultilabelF1Score(n, average="none", **kw),
            "stats": MultilabelStatScores(n, average="none", **kw),
        })
        self.ranked = MetricCollection({
            "auroc_micro": MultilabelAUROC(n, average="micro", **kw),
            "auroc": MultilabelAUROC(n, average="none", **kw),  # per genre, averaged over those present
        })
        self.top1 = TopOneAccuracy(sync_on_compute=sync_on_compute)

    def update(self, probs: torch.Tensor, decisions: torch.Tensor, target: torch.Tensor) -> None:
        target = target.long()
        self.decided.update(decisions, target)
        self.ranked.update(probs.float(), target)
        self.top1.update(probs, target)

    def compute(self) -> dict[str, torch.Tensor]:
        """Scalars under their names, per-class vectors under ``precision``/``recall``/``f1``/``support``."""
        with quiet_undefined():
            out = {**self.decided.compute(), **self.ranked.compute(), "top1_accuracy": self.top1.compute()}
        stats = out.pop("stats")  # per genre: tp, fp, tn, fn, support
        support, rows = stats[:, 4], stats[:, :4].sum(dim=-1)
        present = support > 0
        out["support"] = support
        out["f1_macro"] = out["f1"][present].mean()
        out["auroc_macro"] = out.pop("auroc")[present & (support < rows)].mean()
        out["genres_present"] = present.sum().float()
        return out

    def reset(self) -> None:
        self.decided.reset()
        self.ranked.reset()
        self.top1.reset()


def flatten(results: dict[str, torch.Tensor], label_names: Sequence[str], prefix: str) -> dict[str, float]:
    """``{"val/f1_micro": 0.61, …, "val/f1/action": 0.7, …}`` for loggers and metrics.json."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if key in PER_CLASS:
            flat.update({f"{prefix}/{key}/{name}": float(v) for name, v in zip(label_names, value, strict=True)})
        else:
            flat[f"{prefix}/{key}"] = float(value)
    return flat


def per_class_rows(results: dict[str, torch.Tensor], label_names: Sequence[str]) -> list[dict[str, float | str]]:
    """One row per genre: precision, recall, f1, support."""
    return [
        {"genre": name, **{k: float(results[k][i]) for k in PER_CLASS[:3]}, "support": int(results["support"][i])}
        for i, name in enumerate(label_names)
    ]


ECE_BINS = 15  # equal-width bins of the expected calibration error and the reliability diagram


def top1_confidence(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top probability and whether that genre is one of its true genres (what ``ece`` bins)."""
    top = probs.argmax(1)
    return probs[np.arange(len(probs)), top], targets[np.arange(len(targets)), top].astype(bool)


def reliability_bins(forecast: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """The reliability diagram's points: for each non-empty equal-width bin of ``forecast`` probabilities, their
    mean (``forecast``), the share of true ``outcome``s (``observed``) and the row count (``rows``)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], forecast)  # bin i holds (edge_i, edge_i+1]; the first also holds 0
    rows = np.bincount(ids, minlength=bins)
    kept = rows > 0
    mean = np.bincount(ids, weights=forecast, minlength=bins)[kept] / rows[kept]
    observed = np.bincount(ids, weights=outcome.astype(float), minlength=bins)[kept] / rows[kept]
    return {"forecast": mean, "observed": observed, "rows": rows[kept]}


def calibration_figures(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """``ece``: expected calibration error of the top-1 probability (15 equal-width bins: the row-weighted mean
    gap between confidence and accuracy); ``ece_genres``: the same over every (movie, genre) probability as a yes/no
    forecast of that genre, the multi-label variant; ``brier``: per movie, the summed squared error of its genre
    probabilities, averaged over movies."""
    if not len(probs):
        return {}
    ece = BinaryCalibrationError(n_bins=ECE_BINS, norm="l1", validate_args=False)
    confidence, correct = top1_confidence(probs, targets)
    top1 = float(ece(torch.from_numpy(confidence).float(), torch.from_numpy(correct).long()))
    ece.reset()
    genres = float(ece(torch.from_numpy(probs.ravel()).float(), torch.from_numpy(targets.ravel()).long()))
    brier = float(((probs - targets) ** 2).sum(1).mean())
    return {"ece": top1, "ece_genres": genres, "brier": brier}


def summarize(
    probs: np.ndarray, targets: np.ndarray, decisions: np.ndarray, label_names: Sequence[str], prefix: str
) -> tuple[dict[str, float], list[dict[str, float | str]]]:
    """Flat metrics and per-class rows for whole-dataset arrays (training's final figures, eval, bench)."""
    metrics = GenreMetrics(len(label_names), sync_on_compute=False)
    metrics.update(torch.from_numpy(np.asarray(probs, dtype=np.float32)), torch.from_numpy(np.asarray(decisions)),
                   torch.from_numpy(np.asarray(targets)))
    results = metrics.compute()
    flat = flatten(results, label_names, prefix)
    flat.update({f"{prefix}/{k}": v for k, v in calibration_figures(np.asarray(probs, dtype=np.float64),
                                                                       np.asarray(targets)).items()})
    return flat, per_class_rows(results, label_names)


@dataclass
class Score:
    """Figures of one set of rows under one decision rule (``score``)."""

    metrics: dict[str, Any]  # ``prefix/…`` figures, "decoder"; when tuned also ``prefix_fixed/…``, "thresholds"
    per_class: list[dict[str, Any]]
    decisions: np.ndarray
    decoder: Any  # genre_lab.scoring.decoding.Decoder, after tuning


def score(probs: np.ndarray, targets: np.ndarray, decoder: Any, label_names: Sequence[str], prefix: str,
          tuner: Any = None) -> Score:
    """Score probabilities against multi-hot targets: the one path for training's final figures, eval and
    bench. With a ``tuner`` (genre_lab.scoring.thresholds), thresholds are tuned on these rows first and the figures of
    the rule before tuning are kept as ``prefix_fixed/…``."""
    metrics: dict[str, Any] = {}
    if tuner is not None:
        metrics.update(summarize(probs, targets, decoder.decide(probs), label_names, f"{prefix}_fixed")[0])
        decoder = tuner.tune(probs, targets, decoder)
        metrics["thresholds"] = tuner.report
    decisions = decoder.decide(probs)
    flat, per_class = summarize(probs, targets, decisions, label_names, prefix)
    return Score({**metrics, **flat, "decoder": decoder.to_dict()}, per_class, decisions, decoder)
