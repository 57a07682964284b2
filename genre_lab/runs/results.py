"""A run's figures out: the one tail of train, the TF-IDF baseline, ensemble and eval.

``finish`` scores the rows (``metrics.score``, thresholds tuned when a tuner is given), keeps their probabilities
(``val_probs.npz``), lets the command store what depends on the tuned rule (``keep``: the checkpoint's rule, the
baseline's model file, ``ensemble.json``, ``decisions.csv``), plots, and ``publish``es: ``metrics.json`` and
``per_class.csv`` (``RunLayout``), the figures, the per-genre table and the plots to the loggers, and the results
view on the terminal. ``metrics.json`` is written last: its presence says the run finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from genre_lab.data.labels import LabelSpace
from genre_lab.framework.loggers import log_results
from genre_lab.io import write_csv, write_json
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring import plots
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import Score, score
from genre_lab.scoring.report import print_results


@dataclass
class Report:
    """Where and how one scored set of rows is reported."""

    out: Path  # the command's output directory
    stage: str  # the figures' prefix: ``val`` (a run's validation split) or ``eval``
    title: str  # the terminal view's title
    loggers: Sequence[Any]
    log_prefix: str = ""  # ``final/`` for a run's closing figures (the per-epoch ``val/…`` keep their names)
    plots: bool = True
    keep_probs: bool = True  # val_probs.npz (a run's validation rows; eval scores other rows)
    finish_loggers: bool = False  # close the loggers afterwards (a command that opened them only for this)


def build_tuner(cfg: DictConfig, enabled: bool = True) -> Any | None:
    """The threshold tuner of ``cfg.tuning``; None with ``~tuning`` (or not ``enabled``: eval's ``tune=false``)."""
    return hydra.utils.instantiate(cfg.tuning) if enabled and cfg.get("tuning") else None


def finish(rows: StoredProbs, space: LabelSpace, decoder: Decoder, tuner: Any | None, report: Report,
           facts: Mapping[str, Any] | None = None, test: StoredProbs | None = None,
           keep: Callable[[Score], Mapping[str, Any] | None] | None = None) -> tuple[dict[str, Any], Score]:
    """Score ``rows`` with ``decoder`` (tuned by ``tuner``), and the labelled ``test`` rows with the rule tuned on
    them; store (``val_probs.npz``, ``test_probs.npz``), plot and publish. ``facts`` join the figures in
    metrics.json, as does what ``keep`` returns. Returns the metrics and the scored rows."""
    scored = score(rows.probs, rows.targets, decoder, space.names, report.stage, tuner)
    metrics = dict(scored.metrics)
    if test is not None:
        tested = score(test.probs, test.targets, scored.decoder, space.names, "test").metrics
        metrics.update({k: v for k, v in tested.items() if k.startswith("test/")})
    if report.keep_probs:
        rows.save(RunLayout(report.out).val_probs)
        if test is not None:  # a fold run's held-out rows: its cross-validation averages them over the folds
            test.save(RunLayout(report.out).test_probs)
    metrics.update(facts or {})
    metrics.update((keep(scored) if keep else None) or {})
    images = plots.write_all(report.out, rows.probs, rows.targets, scored.decisions, space, scored.decoder) \
        if report.plots else []
    publish(report, metrics, scored.per_class, images)
    return metrics, scored


def publish(report: Report, metrics: dict[str, Any], per_class: list[dict[str, Any]],
            images: Sequence[Path]) -> None:
    """Write, log and print one scored set of rows: the loggers get every scalar ``stage/figure`` (per-genre
    figures go in the table), under ``report.log_prefix``."""
    layout = RunLayout(report.out)
    write_csv(layout.per_class, per_class)
    write_json(layout.metrics, metrics)
    scalars = {f"{report.log_prefix}{k}": v for k, v in metrics.items()
               if isinstance(v, float) and k.count("/") == 1}
    log_results(report.loggers, scalars, per_class, images, report.stage, finish=report.finish_loggers)
    print_results(report.title, metrics, per_class, report.stage)
