"""`genre-lab train`: fit a GenreClassifier on a movie CSV, everything composed by Hydra.

Writes into the run directory: ``.hydra/`` (resolved config), ``checkpoints/best.ckpt`` (weights) and
``last.ckpt`` (full state, for resume; a finished Optuna trial drops it), ``tokenizer/``, ``csv/metrics.csv``
(per-epoch history), ``metrics.json`` (final validation/test figures of the best checkpoint, with the tuned
decision rule), ``per_class.csv``, ``val_probs.npz`` (validation probabilities), ``timing.json`` and the plots.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genre_lab.backbones import check_max_length
from genre_lab.config_dir import config_dir
from genre_lab.data.datamodule import GenreDataModule
from genre_lab.data.movie_data import MovieData
from genre_lab.data.tokens import make_collator
from genre_lab.errors import run_app, user_errors
from genre_lab.framework.callbacks import StopWithSweeper
from genre_lab.framework.distributed import install_rank_command, job_scope, rank_zero_console
from genre_lab.framework.loggers import finish_logger, instantiate_loggers, log_config, log_summary, restore_history
from genre_lab.framework.trainer import build_trainer
from genre_lab.io import write_json
from genre_lab.model.adapters import parameter_counts
from genre_lab.model.build import build_model
from genre_lab.model.inference import predict_logits
from genre_lab.model.module import head_of, probabilities
from genre_lab.runs.checkpoint import store_in_checkpoint
from genre_lab.runs.finished import Run
from genre_lab.runs.guard import NothingToDo, refuse_reuse
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.resume import budgets, check_resume, finished_already, nothing_to_do
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.metrics import score
from genre_lab.scoring.seed_groups import config_id
from genre_lab.settings import check_train_settings, fits_texts
from genre_lab.sweeps.cross_validation import cross_validate, is_driver, objective
from genre_lab.sweeps.pruning import TrialPruning
from genre_lab.train_baseline import fit_baseline

log = logging.getLogger(__name__)


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path or None


def final_metrics(cfg: DictConfig, model: Any, data: MovieData, ckpt: str | None, report: Report,
                  facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Figures of the best checkpoint, computed the way `genre-lab eval` computes them (``runs.results.finish``).

    Validation logits are computed once; the calibration (``calibration``) is fitted on them, then thresholds are
    tuned on the calibrated probabilities (``tuning``); both go into the checkpoint. The fixed-rule
    (``val_fixed/…``), the uncalibrated (``val_uncalibrated/…``, when calibrated) and the final (``val/…``) figures
    are reported. A labelled test set is scored with the final calibration and rule.
    """
    if ckpt:
        model = Run(Path(ckpt), None).model
    collate = make_collator(data.tokenizer)
    precision = str(cfg.trainer.precision)

    def logits_and_targets(stage: str) -> tuple[np.ndarray, np.ndarray]:
        rows = data.splits[stage].dataset
        return predict_logits(model, rows.input_ids, collate, data.eval_batch, precision=precision), rows.targets

    logits, targets = logits_and_targets("val")
    objective = head_of(model.hparams)["objective"]
    model.calibration = hydra.utils.instantiate(cfg.calibration).fit(logits, targets, objective) \
        if cfg.get("calibration") else None
    probs = model.probabilities(torch.from_numpy(logits)).numpy()
    val = StoredProbs(np.asarray(data.splits["val"].movie_ids), probs, targets, model.label_space.names)
    tuner = build_tuner(cfg)
    # the fixed rule is the configured one (decode.*), never a rule tuned earlier and stored in best.ckpt (a
    # resumed run whose best epoch predates the resume would otherwise take its tuned rule as "fixed")
    decoder = hydra.utils.instantiate(cfg.decode)
    facts = {**(facts or {}), "calibration": model.calibration}
    if model.calibration is not None:
        facts.update(uncalibrated(probabilities(torch.from_numpy(logits), objective).numpy(), targets, decoder,
                                  model.label_space.names, tuner))

    def keep(scored: Any) -> None:
        rule = scored.metrics["decoder"] if tuner is not None else None
        store_in_checkpoint(ckpt, calibration=model.calibration, **({"decoder": rule} if rule else {}))

    test = None
    if data.has_labels("test"):
        test_logits, test_targets = logits_and_targets("test")
        test = StoredProbs(np.asarray(data.splits["test"].movie_ids),
                           model.probabilities(torch.from_numpy(test_logits)).numpy(), test_targets,
                           model.label_space.names)
    metrics, _ = finish(val, model.label_space, decoder, tuner, report, facts, test, keep if ckpt else None)
    return metrics


def uncalibrated(probs: np.ndarray, targets: np.ndarray, decoder: Any, names: Any, tuner: Any) -> dict[str, float]:
    """``val_uncalibrated/…``: the headline and calibration figures of the probabilities before calibration,
    with thresholds tuned on them as they would have been: what calibration changed."""
    scored = score(probs, targets, decoder, names, "val_uncalibrated", tuner).metrics
    return {k: v for k, v in scored.items() if k.startswith("val_uncalibrated/") and k.count("/") == 1}


def resume_checkpoint(cfg: DictConfig, out: Path) -> str | None:
    """``resume=true`` -> this run directory's last.ckpt, when the settings are those it started with (changes
    that may differ on a resume are logged); refuses to train over an existing run otherwise. NothingToDo for a
    finished run with no more epochs to train."""
    if cfg.get("resume"):
        refuse_reuse(out, resume=True)
        check_resume(cfg, out)
        if finished_already(out, cfg):
            raise NothingToDo(nothing_to_do(out))
        return str(RunLayout(out).last)
    refuse_reuse(out, resume=False)
    return cfg.get("ckpt_path")


def checkpoint_step(path: str) -> int:
    """The global step a checkpoint was saved at (memory-mapped: the weights are not read)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, evaluate the best checkpoint, write the run's result files; returns the final metrics."""
    job_started = time.time()
    check_train_settings(cfg)
    if is_driver(cfg):  # data.folds without data.fold: every fold, then their cross-validation
        return cross_validate(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    try:
        ckpt_path = resume_checkpoint(cfg, out)
    except NothingToDo as done:
        log.info("%s", done)
        return RunLayout(out).read_metrics()
    install_rank_command()
    # _convert_="all": plain containers in hyper-parameters keep checkpoints weights_only-loadable.
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    data: MovieData = datamodule.data
    if not (baseline := fits_texts(cfg.model)):
        check_max_length(data.settings["max_length"], cfg.model.backbone)
    # The label space reads and checks the training file: bad data or top_k fail before tokenizing.
    decoder = hydra.utils.instantiate(cfg.decode).for_genres(len(data.label_space), "the training data")
    log.info(data.describe())
    if baseline:  # the TF-IDF baseline: fitted on the texts, no Lightning (train_baseline.py)
        return fit_baseline(cfg, data, decoder, out)
    model = build_model(cfg, data.label_stats(), decoder)
    loggers = instantiate_loggers(cfg.get("logger"), history_dir=out)  # csv/metrics.csv, whatever the loggers
    # an Optuna trial (set by our sweeper): report the per-epoch metric every validation epoch, stop when pruned
    pruning = TrialPruning(cfg.trial, cfg.monitor) if cfg.get("trial") else None
    watch = StopWithSweeper.from_environment()
    trainer = build_trainer(cfg, loggers, [c for c in (pruning, watch) if c is not None])
    status = "failed"
    try:
        if cfg.get("resume") and trainer.is_global_zero:
            restore_history(trainer.loggers, checkpoint_step(ckpt_path))
        log_config(trainer.loggers, cfg, config_id(cfg))
        try:
            started = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            fit_seconds = time.perf_counter() - started
        except SIGTERMException:  # a SystemExit with code 0: a preempted job must not look successful
            log.warning("stopped by SIGTERM; checkpoints/interrupted.ckpt holds the state at that step")
            raise SystemExit(128 + signal.SIGTERM) from None
        if trainer.is_global_zero:
            write_timing(out, trainer, datamodule, fit_seconds, job_started)
        metrics = finish_run(cfg, trainer, model, data, out, pruning) if trainer.is_global_zero else {}
        status = "success"
        return metrics
    finally:
        for logger in loggers:
            finish_logger(logger, status)


def write_timing(out: Path, trainer: pl.Trainer, datamodule: GenreDataModule, fit_seconds: float,
                 job_started: float) -> None:
    """``timing.json``: the fit's wall time, throughput and the machine share it ran on (CPU threads, visible
    GPUs, wall-clock start and end), kept out of metrics.json, which is reproducible."""
    epochs = trainer.current_epoch  # completed epochs
    samples = len(datamodule.data.splits["train"].rows) * epochs
    if not epochs:  # stopped inside the first epoch (max_steps, fast_dev_run): count batches instead
        batches = trainer.global_step * trainer.accumulate_grad_batches
        samples = batches * datamodule.batch_size * trainer.world_size
    write_json(RunLayout(out).timing, {
        "fit_seconds": fit_seconds, "epochs": epochs, "train_samples": samples,
        "train_samples_per_s": samples / fit_seconds if fit_seconds else 0.0, "global_step": trainer.global_step,
        "precision": str(trainer.precision),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "job_started_at": job_started, "fit_ended_at": time.time(), "pid": os.getpid(), **memory_and_share(trainer),
    })


def memory_and_share(trainer: pl.Trainer) -> dict[str, Any]:
    """The trained share of the parameters (LoRA trains a few percent) and the fit's peak memory: the GPU's
    allocated peak, else the process's peak resident set (this rank's), logged and kept in timing.json."""
    trained, total = parameter_counts(trainer.lightning_module)
    peak = {"peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20} if torch.cuda.is_available() else \
        {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin"
                                                                              else 1024)}  # bytes / KiB
    (key, value), = peak.items()
    log.info("fit: %s of %s parameters trained (%.2f%%); peak memory %.0f MB (%s)", f"{trained:,}", f"{total:,}",
             100 * trained / max(total, 1), value, "GPU, allocated" if "gpu" in key else "process RSS")
    return {"trainable_parameters": trained, "parameters": total, **peak}


def finish_run(cfg: DictConfig, trainer: pl.Trainer, model: Any, data: MovieData, out: Path,
               pruning: TrialPruning | None = None) -> dict[str, Any]:
    """Rank zero, after fit: final figures, tuned thresholds, result files, plots, logger summaries.

    A pruned trial is finished the same way (its best checkpoint so far), marked ``"status": "pruned"``.
    """
    ckpt = best_checkpoint(trainer)
    layout = RunLayout(out)
    data.tokenizer.save_pretrained(layout.tokenizer)  # the run directory is self-contained
    facts: dict[str, Any] = {"best_checkpoint": ckpt, "epochs": trainer.current_epoch,
                             "global_step": trainer.global_step, "config_id": config_id(cfg), "budget": budgets(cfg)}
    if pruning is not None:
        facts["trial"] = int(cfg.trial.number)
        if pruning.pruned:
            facts.update({"status": "pruned", "pruned_after_epoch": pruning.pruned_at, "best_reported": pruning.best,
                          "stopped_by": pruning.stopped_by})
        log_summary(trainer.loggers, {"trial/number": facts["trial"],
                                      "trial/state": "pruned" if pruning.pruned else "complete"})
    # No best.ckpt (a run that never validated): the figures are those of the final weights, which last.ckpt
    # holds, unless nothing was saved at all (fast_dev_run: Lightning suppresses checkpointing).
    last = layout.last
    which = "best checkpoint" if ckpt else "last checkpoint" if last.is_file() else "final weights, not saved"
    report = Report(out, "val", f"validation ({which})", trainer.loggers, log_prefix="final/")
    metrics = final_metrics(cfg, model, data, ckpt, report, facts)
    log.info("results in %s; figures of the %s %s", out, which, ckpt or (last if last.is_file() else ""))
    if pruning is not None and not pruning.pruned and ckpt and last.is_file():
        # a finished trial is never resumed; a pruned one keeps last.ckpt (a later search may continue it)
        last.unlink()
        log.info("trial finished: removed %s (best.ckpt holds its model)", last)
    return metrics


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    rank_zero_console()
    with job_scope():
        metrics = train(cfg)
    if is_driver(cfg):  # a cross-validation: the mean over its folds (its val/ figures are the held-out rows')
        return objective(cfg, metrics)
    if metrics.get("status") == "pruned":  # results are written; the sweeper tells the study PRUNED
        from genre_lab.sweeps.outcome import StoppedByBudget, TrialPruned  # deferred: optuna is an extra

        if metrics.get("stopped_by") == "timeout":
            raise StoppedByBudget(f"trial {metrics['trial']} stopped by the search's time budget after epoch "
                                  f"{metrics['pruned_after_epoch']}")
        raise TrialPruned(f"trial {metrics['trial']} pruned after epoch {metrics['pruned_after_epoch']}")
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
