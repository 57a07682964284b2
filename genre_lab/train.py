"""`genre-lab train`: fit a GenreClassifier on a movie CSV, everything composed by Hydra.

Writes into the run directory: ``.hydra/`` (resolved config), ``checkpoints/best.ckpt`` (weights) and
``last.ckpt`` (full state, for resume; a finished Optuna trial drops it), ``tokenizer/``, ``csv/metrics.csv``
(per-epoch history), ``metrics.json`` (final validation/test figures of the best checkpoint, with the tuned
decision rule), ``per_class.csv``, ``val_probs.npz`` (validation probabilities), ``timing.json`` and the plots.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from genre_lab.backbones import check_max_length
from genre_lab.config_dir import config_dir
from genre_lab.data.tokens import make_collator
from genre_lab.errors import GenreLabError, run_app, user_errors
from genre_lab.framework.distributed import install_rank_command, job_scope, rank_zero_console
from genre_lab.framework.loggers import (
    finish_logger,
    instantiate_all,
    instantiate_loggers,
    log_summary,
    restore_history,
)
from genre_lab.io import write_json
from genre_lab.model.inference import predict_probs
from genre_lab.model.module import check_single_label
from genre_lab.runs.checkpoint import store_decoder
from genre_lab.runs.finished import Run
from genre_lab.runs.guard import NothingToDo, refuse_reuse
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.resume import budgets, check_resume, finished_already, nothing_to_do
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring import plots
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score
from genre_lab.scoring.results import publish
from genre_lab.scoring.seed_groups import config_id
from genre_lab.settings import check_train_settings, fits_texts
from genre_lab.sweeps.pruning import TrialPruning
from genre_lab.train_baseline import fit_baseline

log = logging.getLogger(__name__)


def build_model(cfg: DictConfig, datamodule: Any, decoder: Decoder | None = None) -> pl.LightningModule:
    labels = datamodule.label_space
    check_single_label(cfg.model.get("objective", "bce"), datamodule.rows_with_several_genres(),
                       len(datamodule.train_table), datamodule.hparams.train_csv)
    pos_weight = cfg.model.get("pos_weight")
    if pos_weight == "auto":
        pos_weight = datamodule.pos_weight()
    # the optimizer/scheduler as plain configs: the module instantiates them, and checkpoints hold no objects
    recipe = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("optimizer", "scheduler") if cfg.get(k)}
    # Through a partial: Hydra would try to merge the Decoder object into the config.
    return hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
        label_names=list(labels.names),
        multi_label=labels.multi_label,
        pos_weight=pos_weight,
        label_prior=datamodule.label_prior(),
        decoder=decoder or hydra.utils.instantiate(cfg.decode),
        **recipe,
    )


def build_trainer(cfg: DictConfig, loggers: list, extra_callbacks: list) -> pl.Trainer:
    """The configured Trainer; settings Lightning rejects (precision, devices, …) are a user error."""
    callbacks = instantiate_all(cfg.get("callbacks")) + extra_callbacks
    try:
        return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    except InstantiationException as err:
        if not isinstance(err.__cause__, (MisconfigurationException, ValueError)):
            raise
        raise GenreLabError(f"trainer settings rejected by Lightning: {err.__cause__}. Fix the trainer.* "
                            "override (`--cfg job` prints them)") from err


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path or None


def final_metrics(cfg: DictConfig, model: Any, datamodule: Any, ckpt: str | None, out: Path) -> tuple[dict, list, list]:
    """Figures of the best checkpoint, computed the way `genre-lab eval` computes them.

    Validation probabilities are computed once; thresholds are tuned on them (``tuning``), the tuned
    rule is written into the checkpoint, and both the fixed-rule (``val_fixed/…``) and the final
    (``val/…``) figures are reported; the probabilities are kept in ``val_probs.npz`` for row-by-row
    comparisons. A labelled test set is scored with the final rule. The evaluation plots of the validation
    split go into ``out``. Returns metrics, per-class rows, plot paths.
    """
    if ckpt:
        model = Run(Path(ckpt), None).model
    names = model.label_space.names
    collate = make_collator(datamodule.tokenizer)

    def probs_and_targets(stage: str) -> tuple[np.ndarray, np.ndarray]:
        data = datamodule.splits[stage].dataset
        probs = predict_probs(model, data.input_ids, collate, datamodule.eval_batch,
                              precision=str(cfg.trainer.precision))
        return probs, data.targets

    probs, targets = probs_and_targets("val")
    StoredProbs(np.asarray(datamodule.splits["val"].movie_ids), probs, targets, names).save(RunLayout(out).val_probs)
    tuner = hydra.utils.instantiate(cfg.tuning) if cfg.get("tuning") else None
    # the fixed rule is the configured one (decode.*), never a rule tuned earlier and stored in best.ckpt (a
    # resumed run whose best epoch predates the resume would otherwise take its tuned rule as "fixed")
    fixed = hydra.utils.instantiate(cfg.decode)
    val = score(probs, targets, fixed, names, "val", tuner)
    if tuner is not None and ckpt:
        store_decoder(ckpt, val.metrics["decoder"])
    metrics = dict(val.metrics)
    if datamodule.has_test_labels:
        test_probs, test_targets = probs_and_targets("test")
        test = score(test_probs, test_targets, val.decoder, names, "test").metrics  # the rule tuned on val
        metrics.update({k: v for k, v in test.items() if k.startswith("test/")})
    images = plots.write_all(out, probs, targets, val.decisions, model.label_space, val.decoder)
    return metrics, val.per_class, images


def run_config_id(cfg: DictConfig) -> str:
    """The same for runs that differ only in their seed (genre_lab.scoring.seed_groups)."""
    return config_id(OmegaConf.to_container(cfg, resolve=False))  # type: ignore[arg-type]


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
    pl.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    try:
        ckpt_path = resume_checkpoint(cfg, out)
    except NothingToDo as done:
        log.info("%s", done)
        return RunLayout(out).read_metrics()
    install_rank_command()
    decoder = hydra.utils.instantiate(cfg.decode)
    # _convert_="all": plain containers in hyper-parameters keep checkpoints weights_only-loadable.
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    baseline = fits_texts(cfg.model)
    if not baseline:
        check_max_length(datamodule.hparams.max_length, cfg.model.backbone)
    # The label space reads and checks the training file: bad data or top_k fail before tokenizing.
    decoder.for_genres(len(datamodule.label_space), "the training data")
    if baseline:  # the TF-IDF baseline: fitted on the texts, no Lightning (train_baseline.py)
        return fit_baseline(cfg, datamodule, decoder, out)
    datamodule.setup("fit")
    log.info(datamodule.describe())
    model = build_model(cfg, datamodule, decoder)
    loggers = instantiate_loggers(cfg.get("logger"), history_dir=out)  # csv/metrics.csv, whatever the loggers
    # an Optuna trial (set by our sweeper): report the per-epoch metric every validation epoch, stop when pruned
    pruning = TrialPruning(cfg.trial, cfg.monitor) if cfg.get("trial") else None
    trainer = build_trainer(cfg, loggers, [pruning] if pruning else [])
    datamodule.fit_global_batch(trainer.world_size, trainer.accumulate_grad_batches)
    status = "failed"
    try:
        if cfg.get("resume") and trainer.is_global_zero:
            restore_history(trainer.loggers, checkpoint_step(ckpt_path))
        for logger in trainer.loggers:  # the resolved config, and config_id: W&B groups seeds of one config by it
            logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "config_id": run_config_id(cfg)})
        try:
            started = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            fit_seconds = time.perf_counter() - started
        except SIGTERMException:  # a SystemExit with code 0: a preempted job must not look successful
            log.warning("stopped by SIGTERM; checkpoints/interrupted.ckpt holds the state at that step")
            raise SystemExit(128 + signal.SIGTERM) from None
        if trainer.is_global_zero:
            write_timing(out, trainer, datamodule, fit_seconds, job_started)
        metrics = finish_run(cfg, trainer, model, datamodule, out, pruning) if trainer.is_global_zero else {}
        status = "success"
        return metrics
    finally:
        for logger in loggers:
            finish_logger(logger, status)


def write_timing(out: Path, trainer: pl.Trainer, datamodule: Any, fit_seconds: float, job_started: float) -> None:
    """``timing.json``: the fit's wall time, throughput and the machine share it ran on (CPU threads, visible
    GPUs, wall-clock start and end), kept out of metrics.json, which is reproducible."""
    epochs = trainer.current_epoch  # completed epochs
    samples = len(datamodule.splits["train"].rows) * epochs
    if not epochs:  # stopped inside the first epoch (max_steps, fast_dev_run): count batches instead
        batches = trainer.global_step * trainer.accumulate_grad_batches
        samples = batches * datamodule.hparams.batch_size * trainer.world_size
    write_json(RunLayout(out).timing, {
        "fit_seconds": fit_seconds, "epochs": epochs, "train_samples": samples,
        "train_samples_per_s": samples / fit_seconds if fit_seconds else 0.0, "global_step": trainer.global_step,
        "precision": str(trainer.precision),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "job_started_at": job_started, "fit_ended_at": time.time(), "pid": os.getpid(),
    })


def finish_run(cfg: DictConfig, trainer: pl.Trainer, model: Any, datamodule: Any, out: Path,
               pruning: TrialPruning | None = None) -> dict[str, Any]:
    """Rank zero, after fit: final figures, tuned thresholds, result files, plots, logger summaries.

    A pruned trial is finished the same way (its best checkpoint so far), marked ``"status": "pruned"``.
    """
    ckpt = best_checkpoint(trainer)
    layout = RunLayout(out)
    datamodule.tokenizer.save_pretrained(layout.tokenizer)  # the run directory is self-contained
    metrics, per_class, images = final_metrics(cfg, model, datamodule, ckpt, out)
    metrics.update({"best_checkpoint": ckpt, "epochs": trainer.current_epoch, "global_step": trainer.global_step,
                    "config_id": run_config_id(cfg), "budget": budgets(cfg)})
    if pruning is not None:
        metrics["trial"] = int(cfg.trial.number)
        if pruning.pruned:
            metrics.update({"status": "pruned", "pruned_after_epoch": pruning.pruned_at,
                            "best_reported": pruning.best})
        log_summary(trainer.loggers, {"trial/number": metrics["trial"],
                                      "trial/state": "pruned" if pruning.pruned else "complete"})
    # No best.ckpt (a run that never validated): the figures are those of the final weights, which last.ckpt
    # holds, unless nothing was saved at all (fast_dev_run: Lightning suppresses checkpointing).
    last = layout.last
    which = "best checkpoint" if ckpt else "last checkpoint" if last.is_file() else "final weights, not saved"
    publish(out, metrics, per_class, images, trainer.loggers, "val", f"validation ({which})", log_prefix="final/")
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
    if metrics.get("status") == "pruned":  # results are written; the sweeper tells the study PRUNED
        from optuna import TrialPruned  # deferred: optuna is an optional extra

        raise TrialPruned(f"trial {metrics['trial']} pruned after epoch {metrics['pruned_after_epoch']}")
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
