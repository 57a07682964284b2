"""Evaluation plots as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchmetrics.classification import MultilabelPrecisionRecallCurve  # noqa: E402

from genre_lab.data.labels import LabelSpace  # noqa: E402
from genre_lab.scoring.decoding import Decoder  # noqa: E402
from genre_lab.scoring.metrics import quiet_undefined, reliability_bins, top1_confidence  # noqa: E402
from genre_lab.scoring.thresholds import threshold_curves  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heatmap(matrix: np.ndarray, names: Sequence[str], title: str, xlabel: str, ylabel: str, path: Path) -> Path:
    size = max(5.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def confusion_matrix(targets: np.ndarray, probs: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Single-label data: true genre (rows) vs most probable genre (columns), row-normalised."""
    n = len(names)
    counts = np.zeros((n, n))
    np.add.at(counts, (targets.argmax(1), probs.argmax(1)), 1)
    rates = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    return _heatmap(rates, names, "confusion (row-normalised)", "predicted (top-1)", "true genre", path)


def cooccurrence(targets: np.ndarray, decisions: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Multi-label data: share of movies of each true genre (rows) predicted as each genre (columns)."""
    t, d = targets.astype(float), decisions.astype(float)
    rates = (t.T @ d) / np.clip(t.sum(0)[:, None], 1, None)
    return _heatmap(rates, names, "predicted genre given true genre", "predicted", "true genre", path)


def pr_curves(probs: np.ndarray, targets: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Precision-recall curve per genre (exact, from torchmetrics)."""
    curve = MultilabelPrecisionRecallCurve(len(names))
    with quiet_undefined():  # a genre absent from the data has no curve
        precision, recall, _ = curve(torch.from_numpy(probs), torch.from_numpy(targets).long())
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.cm.tab20(np.linspace(0, 1, len(names)))
    for name, p, r, colour in zip(names, precision, recall, colours, strict=True):
        ax.plot(r.numpy(), p.numpy(), label=name, color=colour, linewidth=1.2)
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall per genre", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return _save(fig, path)


def f1_vs_threshold(probs: np.ndarray, targets: np.ndarray, path: Path, marks: dict[str, float]) -> Path:
    """Micro/macro F1 of one global threshold across (0, 1), with chosen thresholds marked."""
    grid = np.round(np.arange(0.01, 1.0, 0.01), 4)
    curves = threshold_curves(probs, targets, grid)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in curves.items():
        ax.plot(grid, values, label=name)
    for label, value in marks.items():
        ax.axvline(value, linestyle="--", color="grey", linewidth=0.8)
        ax.text(value, 0.02, f" {label}={value:.2f}", rotation=90, fontsize=8, va="bottom")
    ax.set(xlabel="global threshold", ylabel="F1", title="F1 vs threshold", xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return _save(fig, path)


def reliability(probs: np.ndarray, targets: np.ndarray, path: Path) -> Path:
    """Reliability diagram: observed frequency against forecast probability, for the top-1 genre (its
    confidence vs being right) and for every genre probability as a yes/no forecast; the diagonal is perfect."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    confidence, correct = top1_confidence(probs, targets)
    for (forecast, outcome), label in (((confidence, correct), "top-1 genre"),
                                       ((probs.ravel(), targets.ravel()), "every genre")):
        points = reliability_bins(forecast, outcome)
        ax.plot(points["forecast"], points["observed"], marker="o", markersize=3, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="forecast probability (bin mean)", ylabel="observed frequency",
           title="reliability (15 equal-width bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def write_all(out: Path, probs: np.ndarray, targets: np.ndarray, decisions: np.ndarray, space: LabelSpace,
              decoder: Decoder) -> list[Path]:
    """The evaluation plots for one set of predictions; returns the PNG paths."""
    names = list(space.names)
    marks = {"0.5": 0.5} | ({"chosen": decoder.threshold} if isinstance(decoder.threshold, float) else {})
    paths = [pr_curves(probs, targets, names, out / "pr_curves.png"),
             f1_vs_threshold(probs, targets, out / "f1_vs_threshold.png", marks),
             reliability(probs, targets, out / "reliability.png")]
    if space.multi_label:
        paths.append(cooccurrence(targets, decisions, names, out / "predicted_given_true.png"))
    else:
        paths.append(confusion_matrix(targets, probs, names, out / "confusion_matrix.png"))
    return paths
