"""Terminal tables for results (rich), shared by train and eval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

HEADLINE = ("f1_micro", "f1_macro", "auroc_micro", "auroc_macro", "exact_match", "top1_accuracy")


def print_results(title: str, metrics: Mapping[str, float], per_class: Sequence[Mapping[str, Any]],
                  prefix: str) -> None:
    """Per-genre precision/recall/F1/support, then the headline metrics of ``prefix`` (e.g. ``val``)."""
    table = Table(title=f"{title}: per-genre", title_justify="left")
    for column in ("genre", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "genre" else "right")
    for row in per_class:
        table.add_row(row["genre"], *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    headline = Table(title=f"{title}: headline", title_justify="left")
    headline.add_column("metric")
    headline.add_column("value", justify="right")
    for name in HEADLINE:
        key = f"{prefix}/{name}"
        if key in metrics:
            headline.add_row(key, f"{metrics[key]:.4f}")
    console = Console(width=100)
    console.print(table)
    console.print(headline)
    present = metrics.get(f"{prefix}/genres_present")
    if present is not None and int(present) < len(per_class):
        console.print(f"macro averages over {int(present)} of {len(per_class)} genres present "
                      "(genres without rows here are left out)")
