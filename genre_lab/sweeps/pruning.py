"""Pruning: a job reports its metric to its Optuna trial after every validation epoch and stops when told.

The stop goes through ``trainer.should_stop`` (as EarlyStopping does) rather than an exception out of ``fit``:
the epoch's checkpoints are written, the loggers close normally, and ``train`` still scores the best checkpoint
so far. ``train`` then marks ``metrics.json`` ``"status": "pruned"`` and the job raises ``optuna.TrialPruned``,
which the sweeper tells the study as PRUNED.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from typing import Any

import pytorch_lightning as pl

from genre_lab.sweeps.trial_link import reach_trial

log = logging.getLogger(__name__)


class TrialPruning(pl.Callback):
    """Report ``metric`` to the trial named by ``trial_node`` each validation epoch; stop training when pruned.

    Only global rank zero talks to the study; its decision is broadcast so every DDP rank stops together.
    """

    def __init__(self, trial_node: Any, metric: str) -> None:
        self.trial_node = trial_node
        self.metric = metric
        self.trial: Any = None  # optuna.trial.Trial, reached at fit start on rank zero
        self.pruned_at: int | None = None  # the epoch whose value got the trial pruned
        self.best: float | None = None  # best reported value (in the study's direction)
        self.stop_at = trial_node.get("stop_at")  # the search's time budget ends then (on_timeout=stop)
        self.stopped_by: str | None = None  # "pruner" or "timeout"

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.trial = reach_trial(self.trial_node)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune = False
        if trainer.is_global_zero and self.trial is not None:
            # reported every epoch; never pruned after its last one: stopping then saves nothing, and the trial,
            # having spent its whole budget, is COMPLETE with its value (a candidate for the best, a reference for
            # the pruner), not PRUNED
            prune = self._report(trainer) and not self.last_epoch(trainer)
        if trainer.is_global_zero and not prune and self.past_budget() and not self.last_epoch(trainer):
            self.stopped_by = "timeout"
        prune = prune or self.stopped_by == "timeout"
        if trainer.world_size > 1:  # every rank stops at the same epoch, by rank zero's decision
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_at = trainer.current_epoch
            self.stopped_by = self.stopped_by or "pruner"
            trainer.should_stop = True
        if prune and trainer.is_global_zero:
            why = "stopped: the search's time budget has passed" if self.stopped_by == "timeout" else "pruned"
            log.info("trial %s %s after epoch %d (%s: best %s)", self.trial_node["number"], why,
                     trainer.current_epoch, self.metric, self.best)
            if self.trial is not None:
                self.trial.set_user_attr("stopped_by", self.stopped_by)

    def past_budget(self) -> bool:
        return self.stop_at is not None and time.time() >= float(self.stop_at)

    @staticmethod
    def last_epoch(trainer: pl.Trainer) -> bool:
        max_epochs = getattr(trainer, "max_epochs", None)
        return max_epochs is not None and max_epochs > 0 and trainer.current_epoch >= max_epochs - 1

    def _report(self, trainer: pl.Trainer) -> bool:
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            log.warning("pruning: %s was not logged in epoch %d; nothing reported", self.metric,
                        trainer.current_epoch)
            return False
        value = float(value)
        maximize = self.trial.study.direction.name == "MAXIMIZE"
        if not math.isnan(value) and (self.best is None or (value > self.best if maximize else value < self.best)):
            self.best = value
        try:
            self.trial.report(value, step=trainer.current_epoch)
        except Exception as err:  # UpdateFinishedTrialError: its sweeper stopped, or a heartbeat found it stale
            if type(err).__name__ != "UpdateFinishedTrialError":
                raise
            log.warning("trial %s was finished by its sweeper (%s): stopping", self.trial_node["number"], err)
            os.kill(os.getpid(), signal.SIGTERM)  # saved as a preempted run is (interrupted.ckpt)
            return False
        return self.trial.should_prune()

    def state_dict(self) -> dict[str, Any]:
        return {}
