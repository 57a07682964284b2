"""`genre-lab train … data.folds=k`: k-fold cross-validation as one genre_lab run.

Each fold is an ordinary training run (``data.fold=i``, data/folds.py) in ``<run dir>/fold_<i>``, started as its own
`genre-lab train` process with the command's overrides (its own Hydra record, log, lock and guards). A finished fold
is kept and a fold stopped midway resumes from its last.ckpt, so running the command again goes on where it stopped.
The folds may also be run by any Hydra launcher (parallel slots, SLURM) into the same folders —
``-m data.folds=k data.fold=0,…,k-1 hydra.sweep.dir=<run dir> hydra.sweep.subdir=fold_${data.fold}`` — after which
the command only collects them.

Collected into the run directory: ``oof_probs.npz`` (every training row scored by the fold model that never trained on
it) and the thresholds tuned on it (``oof/…``); the held-out rows (``data.val_csv`` or the split) scored by the
average of the k fold models with that rule — ``val/…``, the honest figure, and ``val_probs.npz`` — beside
``val_tuned_on_val/…``, the same rows with thresholds tuned on themselves as a single run reports them (the
difference is that figure's optimism); ``cv/<figure>`` and its ``std`` and ``±95%``: the fold models, each on its
own fold — what a search trial returns (``objective``), after reporting the running mean fold by fold.
``ensemble.json`` makes the run the ensemble of its folds for eval, predict, compare and ensemble.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from genre_lab.data.labels import LabelSpace
from genre_lab.errors import GenreLabError
from genre_lab.framework.loggers import instantiate_loggers, log_config
from genre_lab.io import sigterm_raises, write_json
from genre_lab.runs.finished import average_stored, ensemble_definition, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.figure_names import HEADLINE
from genre_lab.scoring.metrics import Score, score
from genre_lab.scoring.seed_groups import config_id, interval

log = logging.getLogger(__name__)
# overrides the driver sets per fold; a search's trial is the driver's: it alone reports to the study
DROPPED = ("data.fold=", "+data.fold=", "resume=", "hydra.run.dir=", "hydra.mode=", "trial=", "+trial=")


def is_driver(cfg: DictConfig) -> bool:
    """A training run that cross-validates: ``data.folds`` set and no ``data.fold`` of its own."""
    data = cfg.get("data") or {}
    return bool(data.get("folds")) and data.get("fold") is None


def fold_dir(out: Path, fold: int) -> Path:
    return out / f"fold_{fold}"


def check_folds_first(cfg: DictConfig) -> None:
    """The data, the split and the folds checked before any fold starts: a bad file or too many folds fails once,
    with nothing trained."""
    datamodule = hydra.utils.instantiate(cfg.data, fold=0, _convert_="all")
    datamodule.data.stage_rows  # noqa: B018 (reads, checks, splits and folds the training rows)


def fold_overrides(task: Sequence[str], fold: int, folder: Path, resume: bool) -> list[str]:
    kept = [o for o in task if not o.startswith(DROPPED)]
    # hydra.mode=RUN: one run, even where the overrides hold a search (hparams_search sets MULTIRUN)
    return [*kept, f"data.fold={fold}", f"hydra.run.dir={folder}", "hydra.mode=RUN",
            *(["resume=true"] if resume else [])]


def set_aside(folder: Path) -> None:
    """A fold stopped before its first epoch ended (an interrupted.ckpt, no last.ckpt) cannot be resumed, and no
    run trains into a directory holding checkpoints: it is kept beside, renamed, and the fold trains afresh."""
    aside = folder.with_name(f"{folder.name}.stopped-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    log.warning("%s stopped before its first epoch ended (no last.ckpt to resume from): kept as %s; training the "
                "fold afresh", folder, aside)


def run_fold(task: Sequence[str], fold: int, folds: int, folder: Path) -> None:
    """Train fold ``fold`` in ``folder`` (resumed from its last.ckpt when one is there) in its own process."""
    resume = RunLayout(folder).last.is_file()
    if not resume and RunLayout(folder).record():
        set_aside(folder)
    log.info("%s (%d of %d): %s in %s", folder.name, fold + 1, folds, "resuming" if resume else "training", folder)
    command = [sys.executable, "-m", "genre_lab", "train", *fold_overrides(task, fold, folder, resume)]
    child = subprocess.Popen(command)
    try:
        with sigterm_raises():
            code = child.wait()
    except BaseException:  # SIGTERM or Ctrl-C of the cross-validation: stop the fold too (it saves its state)
        child.terminate()
        child.wait()
        raise
    if code != 0:
        raise GenreLabError(f"{folder.name} ({fold + 1} of {folds}) failed (exit {code}); its log is "
                            f"{folder}/train.log. Run the same command again to go on: finished folds are kept, this "
                            "one resumes")


def run_folds(cfg: DictConfig, out: Path, task: Sequence[str]) -> None:
    """Every fold not finished yet, in turn; in a search, the running mean of the folds' ``optimized_metric`` is
    reported to the trial after each fold, and a pruned trial stops there."""
    folds = int(cfg.data.folds)
    trial = FoldReports(cfg) if cfg.get("trial") else None
    for fold in range(folds):
        folder = fold_dir(out, fold)
        if RunLayout(folder).metrics.is_file():
            log.info("%s (%d of %d): finished already", folder.name, fold + 1, folds)
        else:
            run_fold(task, fold, folds, folder)
        if trial is not None and fold < folds - 1:
            trial.report(fold, RunLayout(folder).read_metrics())


class FoldReports:
    """A cross-validating trial's reports: after fold ``i``, the mean of folds 0 … i's own validation figure."""

    def __init__(self, cfg: DictConfig) -> None:
        from genre_lab.sweeps.trial_link import reach_trial

        self.metric, self.number = str(cfg.optimized_metric), int(cfg.trial.number)
        self.trial = reach_trial(cfg.trial)
        self.values: list[float] = []

    def report(self, fold: int, figures: dict[str, Any]) -> None:
        from genre_lab.sweeps.outcome import TrialPruned  # deferred: optuna is an extra

        if self.metric not in figures:
            raise GenreLabError(f"optimized_metric={self.metric}: a fold run's metrics.json has no such figure; a "
                                "cross-validating search optimizes a final figure, e.g. val/f1_micro or val/f1_macro")
        self.values.append(float(figures[self.metric]))
        if self.trial is None:
            return
        self.trial.report(float(np.mean(self.values)), step=fold)
        if self.trial.should_prune():
            raise TrialPruned(f"trial {self.number} pruned after fold {fold} (mean {self.metric} over "
                              f"{len(self.values)} fold(s): {np.mean(self.values):.4f})")


def collect(out: Path, folds: int) -> tuple[StoredProbs, StoredProbs, list[dict[str, Any]]]:
    """The out-of-fold rows (each fold's validation rows, in fold order), the held-out rows averaged over the fold
    models, and each fold's metrics."""
    parts, held, figures = [], [], []
    for fold in range(folds):
        layout = RunLayout(fold_dir(out, fold))
        if not layout.test_probs.is_file():
            raise GenreLabError(f"{layout.root}: no test_probs.npz, so not a finished fold run of this "
                                "cross-validation; remove the folder and run the command again to retrain it")
        parts.append(StoredProbs.load(layout.val_probs))
        held.append(StoredProbs.load(layout.test_probs))
        figures.append(layout.read_metrics())
    mean = average_stored(held, [1.0 / folds] * folds, [f"fold_{fold}" for fold in range(folds)])
    oof = StoredProbs(np.concatenate([p.movie_ids for p in parts]), np.concatenate([p.probs for p in parts]),
                      np.concatenate([p.targets for p in parts]), mean.labels)
    if len(set(map(str, oof.movie_ids))) != len(oof.movie_ids):
        raise GenreLabError(f"{out}: the folds' validation rows overlap: the fold runs were not made with the same "
                            "data.folds and data settings; remove the fold_* folders and run the command again")
    return oof, mean, figures


def fold_spread(figures: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``cv/<figure>``, ``cv/<figure> std`` and ``cv/<figure> ±95%``: each fold model on its own fold (the
    k-fold score, which a search selects on: never the held-out rows)."""
    out: dict[str, float] = {}
    for name in HEADLINE:
        values = [f[f"val/{name}"] for f in figures if f"val/{name}" in f]
        if values:
            out[f"cv/{name}"], out[f"cv/{name} std"], out[f"cv/{name} ±95%"] = interval(values)
    return out


def objective(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """What a cross-validating job returns to a search: the mean over folds of ``optimized_metric``
    (``val/f1_micro`` -> ``cv/f1_micro``), the held-out rows kept out of the choice."""
    return metrics.get(str(cfg.optimized_metric).replace("val/", "cv/", 1))


def headline(scored: Score, stage: str) -> dict[str, float]:
    return {f"{stage}/{n}": scored.metrics[f"{stage}/{n}"] for n in HEADLINE if f"{stage}/{n}" in scored.metrics}


def cross_validate(cfg: DictConfig, task: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or go on with) every fold, then collect them into this run directory; returns its metrics. ``task``:
    the overrides each fold repeats (None: the command line's)."""
    task = command_overrides() if task is None else task
    out = Path(cfg.paths.output_dir)
    check_folds_first(cfg)
    folds = int(cfg.data.folds)
    run_folds(cfg, out, task)
    oof, held, figures = collect(out, folds)
    oof.save(RunLayout(out).oof_probs)
    spec = locate(run_dir=fold_dir(out, 0)).spec  # every fold's: the command's own data settings
    space = LabelSpace(oof.labels, bool(spec.multi_label))
    decoder = hydra.utils.instantiate(cfg.decode).for_genres(len(space), "the training data")
    tuner = build_tuner(cfg)
    tuned = score(oof.probs, oof.targets, decoder, space.names, "oof", tuner)  # the rule: out of fold
    optimistic = score(held.probs, held.targets, decoder, space.names, "val_tuned_on_val", tuner)
    paths = [str(fold_dir(out, fold)) for fold in range(folds)]
    facts = {"model": "cross-validation", "folds": folds, "members": paths, "oof_rows": len(oof.movie_ids),
             "rows": len(held.movie_ids), **headline(tuned, "oof"), **headline(optimistic, "val_tuned_on_val"),
             **fold_spread(figures), "thresholds_tuned_on": "oof", "best_checkpoint": str(RunLayout(out).ensemble),
             "config_id": config_id(cfg)}

    def keep(scored: Score) -> None:  # eval and predict run the fold models and decide with the out-of-fold rule
        write_json(RunLayout(out).ensemble, ensemble_definition(paths, [1.0 / folds] * folds, "cross-validation",
                                                                scored.decoder, space, spec.text_template))

    loggers = instantiate_loggers(cfg.get("logger"))
    log_config(loggers, cfg, facts["config_id"])
    report = Report(out, "val", f"held-out rows, {folds} fold models, out-of-fold thresholds",
                    loggers, log_prefix="final/", finish_loggers=True)
    metrics, _ = finish(held, space, tuned.decoder, None, report, facts, keep=keep)
    log.info("cross-validation of %d folds: results in %s; val/ figures use thresholds tuned on the out-of-fold "
             "probabilities (%s), val_tuned_on_val/ those tuned on the held-out rows themselves", folds, out,
             RunLayout(out).oof_probs)
    return metrics


def command_overrides() -> list[str]:
    """The command's own overrides (Hydra's record of them), which each fold run repeats."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise GenreLabError("data.folds without data.fold runs every fold as its own genre-lab train process: start "
                            "it from the command line (genre-lab train … data.folds=5)")
    return list(OmegaConf.to_container(HydraConfig.get().overrides.task))  # type: ignore[arg-type]
