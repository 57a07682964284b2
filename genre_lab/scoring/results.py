"""Figures out: the one tail of training's final figures and of eval, after ``metrics.score``.

``metrics.json`` and ``per_class.csv`` into the output directory (``RunLayout``), the scalar figures, the
per-genre table and the plots to the loggers, and the results view on the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genre_lab.framework.loggers import log_results
from genre_lab.io import write_csv, write_json
from genre_lab.runs.layout import RunLayout
from genre_lab.scoring.report import print_results


def publish(out: str | Path, metrics: dict[str, Any], per_class: list[dict[str, Any]], images: Sequence[Path],
            loggers: Sequence[Any], prefix: str, title: str, log_prefix: str = "", finish: bool = False) -> None:
    """Write, log and print one scored set of rows. ``prefix`` is the figures' stage (``val``, ``eval``);
    the loggers get every scalar ``stage/figure`` (per-genre figures go in the table), under ``log_prefix``."""
    layout = RunLayout(out)
    write_json(layout.metrics, metrics)
    write_csv(layout.per_class, per_class)
    scalars = {f"{log_prefix}{k}": v for k, v in metrics.items() if isinstance(v, float) and k.count("/") == 1}
    log_results(loggers, scalars, per_class, images, prefix, finish=finish)
    print_results(title, metrics, per_class, prefix)
