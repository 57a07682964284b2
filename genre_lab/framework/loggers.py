"""Loggers from config, and sending final results (metrics, per-class table, plots) to them."""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger

from genre_lab.errors import in_multirun
from genre_lab.framework.logger_checks import check_logger_paths, service_reachable, service_url, without_credentials
from genre_lab.io import same_file
from genre_lab.runs.layout import HISTORY_FILE, RunLayout, csv_logger

log = logging.getLogger(__name__)

# Loggers that talk to a service: when it is unreachable or failing, the run goes on without them.
REMOTE = ("WandbLogger", "MLFlowLogger", "CometLogger", "NeptuneLogger")
GUARDED = ("log_metrics", "log_hyperparams", "log_table", "log_image", "log_graph", "after_save_checkpoint",
           "save", "finalize")


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c, **_defaults(c)) for c in (group or {}).values()
            if c is not None and "_target_" in c]


def instantiate_loggers(group: DictConfig | None, history_dir: str | Path | None = None) -> list[Any]:
    """Loggers from config. A remote one (W&B, …) whose server cannot be reached or that cannot start is left
    out with a warning, and one that fails later is muted with a warning: training goes on, and the local CSV
    log stays complete. ``history_dir``: a training run's directory, whose ``csv/metrics.csv`` (the per-epoch
    history resume and compare read) is kept whatever loggers the group holds, ``~logger`` included."""
    check_logger_paths(group)
    loggers = []
    for name, config in (group or {}).items():
        if config is None or "_target_" not in config:
            continue
        if not str(config._target_).endswith(REMOTE):
            loggers.append(hydra.utils.instantiate(config, **_defaults(config)))
            continue
        url = service_url(config)
        if url and not service_reachable(name, without_credentials(url)):
            continue
        try:
            # the configured arguments, applied to the muting subclass of the configured class
            args = hydra.utils.instantiate(config, _partial_=True, **_defaults(config))
            logger = mute_on_failure(args.func, name)(*args.args, **args.keywords)
            _ = logger.experiment  # opens the run now (wandb.init), so a failure shows here, not mid-fit
        except Exception as err:
            log.warning("logger %r could not start and is left out; the run goes on without it (%s: %s)",
                        name, type(err).__name__, err)
            continue
        loggers.append(logger)
    if history_dir is not None and not any(_writes_history(lg, history_dir) for lg in loggers):
        loggers.insert(0, csv_logger(str(history_dir)))  # first, where logger=csv (and many) put it
    return loggers


def _writes_history(logger: Any, run_dir: str | Path) -> bool:
    return isinstance(logger, CSVLogger) and same_file(logger.log_dir, RunLayout(run_dir).csv_logs)


def mute_on_failure(logger_class: type, name: str) -> type:
    """A subclass of a remote logger class whose logging calls turn a failure into one warning, after which
    the logger is muted and the run goes on. (Subclassing, Lightning's public extension point; the methods
    wrapped are those of ``GUARDED`` the class has, so ``hasattr(logger, "log_table")`` stays true only for
    loggers that can.)"""

    def guarded(method: str) -> Callable[..., Any]:
        parent = getattr(logger_class, method)

        @functools.wraps(parent)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.__dict__.get("_genre_lab_muted"):
                return None
            try:
                return parent(self, *args, **kwargs)
            except Exception as err:
                self.__dict__["_genre_lab_muted"] = True
                log.warning("logger call %s.%s failed; the logger is muted for the rest of the run (%s: %s). "
                            "Local files (checkpoints, metrics.json, csv/) are unaffected", name, method,
                            type(err).__name__, err)
                return None

        return call

    methods = {m: guarded(m) for m in GUARDED if callable(getattr(logger_class, m, None))}
    return type(logger_class.__name__, (logger_class,), {**methods, "__module__": __name__})


def _defaults(config: DictConfig) -> dict[str, Any]:
    """Names a remote logger's config leaves open: W&B and MLflow inside a multirun get one group (W&B) or one
    experiment (MLflow) per sweep, and a run per job named by its overrides; MLflow's experiment is genre_lab
    otherwise."""
    target = str(config._target_)
    mlflow = target.endswith("MLFlowLogger")
    if not (target.endswith("WandbLogger") or mlflow):
        return {}
    extra: dict[str, Any] = {}
    if not in_multirun():
        if mlflow and not config.get("experiment_name"):
            extra["experiment_name"] = "genre_lab"
        return extra
    hc = HydraConfig.get()
    group_key, name_key = ("experiment_name", "run_name") if mlflow else ("group", "name")
    if not config.get(group_key):
        extra[group_key] = Path(hc.sweep.dir).as_posix().replace("/", "-")
    if not config.get(name_key):
        # an Optuna trial: named by its number, without the long trial={…} override
        rest = sorted(o for o in hc.overrides.task if not o.startswith("trial="))
        in_trial = len(rest) < len(hc.overrides.task)
        extra[name_key] = (f"trial{hc.sweep.subdir}-{','.join(rest)}" if in_trial
                           else f"{hc.job.num}-{hc.job.override_dirname}")[:120]
    return extra


def log_config(loggers: Sequence[Any], cfg: DictConfig, config_id: str) -> None:
    """The run's resolved config, and its ``config_id`` (W&B groups the seeds of one config by it)."""
    for logger in loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "config_id": config_id})


def log_results(loggers: Sequence[Any], metrics: dict[str, float], per_class: list[dict[str, Any]],
                images: Sequence[Path], prefix: str, finish: bool = False) -> None:
    """Final figures to every logger; the per-class table and the plots in each logger's own way: W&B tables
    and images, MLflow artifacts, TensorBoard text and images."""
    for logger in loggers:
        logger.log_metrics(metrics)
        try:
            log_tables_and_plots(logger, per_class, images, prefix)
        except Exception as err:  # a failing service must not fail a finished run (as the muted loggers)
            log.warning("%s: per-class table and plots not logged (%s: %s)", type(logger).__name__,
                        type(err).__name__, err)
        if finish:
            finish_logger(logger)


def log_tables_and_plots(logger: Any, per_class: list[dict[str, Any]], images: Sequence[Path], prefix: str) -> None:
    kind = type(logger).__name__
    columns = list(per_class[0]) if per_class else []
    if hasattr(logger, "log_table") and per_class:  # W&B
        logger.log_table(key=f"{prefix}/per_class", columns=columns, data=[list(r.values()) for r in per_class])
    if hasattr(logger, "log_image") and images:
        logger.log_image(key=f"{prefix}/plots", images=[str(p) for p in images])
    if kind == "MLFlowLogger":
        client, run = logger.experiment, logger.run_id
        if per_class:
            lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in per_class]
            client.log_text(run, "\n".join(lines) + "\n", f"{prefix}/per_class.csv")
        for image in images:
            client.log_artifact(run, str(image), artifact_path=f"{prefix}/plots")
    if kind == "TensorBoardLogger":
        import matplotlib.image  # deferred: only TensorBoard runs read the PNGs back

        writer = logger.experiment
        if per_class:
            rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            rows += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in per_class]
            writer.add_text(f"{prefix}/per_class", "\n".join(rows))
        for image in images:
            writer.add_image(f"{prefix}/plots/{Path(image).stem}", matplotlib.image.imread(str(image))[..., :3],
                             dataformats="HWC")
        writer.flush()


def log_summary(loggers: Sequence[Any], values: dict[str, Any]) -> None:
    """``values`` into the run summary of loggers that keep one (W&B), e.g. an Optuna trial's number and state."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        try:
            logger.experiment.summary.update(values)
        except Exception as err:  # a muted or unreachable W&B run must not fail a finished run
            log.warning("W&B summary not updated (%s: %s)", type(err).__name__, err)


def finish_logger(logger: Any, status: str = "success") -> None:
    """Close a logger's run; W&B runs must be finished or the next job of a sweep merges into them."""
    logger.finalize(status)
    if type(logger).__name__ == "WandbLogger":
        import wandb  # deferred: only runs that log to W&B load it

        try:
            wandb.finish(exit_code=0 if status == "success" else 1)
        except Exception as err:  # an unreachable server must not fail a finished run
            log.warning("W&B run could not be finished (%s: %s); `wandb sync` its directory later",
                        type(err).__name__, err)


def restore_history(loggers: Sequence[Any], until_step: int) -> None:
    """On resume: keep the per-epoch history logged before the checkpoint (steps below ``until_step``).

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it opens; the rows read here first are
    logged again through its public API, so a resumed run's file has the same rows as an uninterrupted run's.
    Rows of the interrupted epoch (at or past the checkpoint's step) and final figures of an earlier finish
    are dropped: the resumed run logs them anew.
    """
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / HISTORY_FILE
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        kept = [r for r in rows if int(r["step"]) < until_step and not any(
            k.startswith("final/") and v for k, v in r.items())]
        writer = logger.experiment  # opening it deletes the old file; everything kept is in `kept`
        for row in kept:
            writer.log_metrics({k: _number(v) for k, v in row.items() if v != "" and k != "step"}, int(row["step"]))
        logger.save()
        log.info("resume: %d of %d rows of %s kept (steps before %d)", len(kept), len(rows), path, until_step)


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)
