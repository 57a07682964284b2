"""Loggers from config, and sending final results (metrics, per-class table, plots) to them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c, **_defaults(c)) for c in (group or {}).values()
            if c is not None and "_target_" in c]


def _defaults(config: DictConfig) -> dict[str, Any]:
    """W&B inside a multirun: one run per job, grouped by sweep, named by the job's overrides."""
    from genre_lab.errors import in_multirun

    if not str(config._target_).endswith("WandbLogger") or not in_multirun():
        return {}
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    extra: dict[str, Any] = {}
    if not config.get("group"):
        extra["group"] = Path(hc.sweep.dir).as_posix().replace("/", "-")
    if not config.get("name"):
        extra["name"] = f"{hc.job.num}-{hc.job.override_dirname}"[:120]
    return extra


def log_results(loggers: Sequence[Any], metrics: dict[str, float], per_class: list[dict[str, Any]],
                images: Sequence[Path], prefix: str, finish: bool = False) -> None:
    """Final figures to every logger; per-class table and plots where the logger takes them (W&B)."""
    for logger in loggers:
        logger.log_metrics(metrics)
        if hasattr(logger, "log_table") and per_class:
            logger.log_table(key=f"{prefix}/per_class", columns=list(per_class[0]),
                             data=[list(r.values()) for r in per_class])
        if hasattr(logger, "log_image") and images:
            logger.log_image(key=f"{prefix}/plots", images=[str(p) for p in images])
        if finish:
            finish_logger(logger)


def finish_logger(logger: Any, status: str = "success") -> None:
    """Close a logger's run; W&B runs must be finished or the next job of a sweep merges into them."""
    logger.finalize(status)
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish(exit_code=0 if status == "success" else 1)
