"""`genre-lab train`: fit a GenreClassifier on a movie CSV, everything composed by Hydra.

Writes into the run directory: ``.hydra/`` (resolved config), ``checkpoints/{best,last}.ckpt``,
``metrics.json`` (final validation/test figures of the best checkpoint), ``per_class.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from genre_lab.config_dir import config_dir
from genre_lab.errors import user_errors
from genre_lab.io import write_csv, write_json
from genre_lab.metrics import flatten, per_class_rows
from genre_lab.report import print_results

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def build_model(cfg: DictConfig, datamodule: Any) -> pl.LightningModule:
    labels = datamodule.label_space
    pos_weight = cfg.model.get("pos_weight")
    if pos_weight == "auto":
        pos_weight = datamodule.pos_weight()
    # Through a partial: Hydra would try to merge the Decoder object into the config.
    return hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
        label_names=list(labels.names),
        multi_label=labels.multi_label,
        pos_weight=pos_weight,
        decoder=hydra.utils.instantiate(cfg.decode),
    )


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path or None


def final_metrics(trainer: pl.Trainer, model: Any, datamodule: Any, ckpt: str | None) -> dict[str, Any]:
    """Validate (and test, when the test data is labelled) the best checkpoint; collect flat figures."""
    metrics: dict[str, Any] = {}
    stages = ["val"] + (["test"] if datamodule.has_test_labels else [])
    for stage in stages:
        run = trainer.validate if stage == "val" else trainer.test
        run(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        metrics.update(flatten(model.results[stage], model.label_space.names, stage))
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, evaluate the best checkpoint, write the run's result files; returns the final metrics."""
    pl.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    # _convert_="all": plain containers in hyper-parameters keep checkpoints weights_only-loadable.
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    log.info(datamodule.describe())
    model = build_model(cfg, datamodule)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger"))
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    ckpt = best_checkpoint(trainer)
    metrics = final_metrics(trainer, model, datamodule, ckpt)
    metrics.update({"best_checkpoint": ckpt, "epochs": trainer.current_epoch, "global_step": trainer.global_step})
    if trainer.is_global_zero:
        write_json(out / "metrics.json", metrics)
        write_csv(out / "per_class.csv", per_class_rows(model.results["val"], model.label_space.names))
        print_results("validation (best checkpoint)", metrics,
                      per_class_rows(model.results["val"], model.label_space.names), "val")
        log.info("results in %s; best checkpoint %s", out, ckpt)
    return metrics


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
