"""`genre-lab train model=tfidf_lr`: fit a model that reads texts itself (the TF-IDF baseline) without Lightning.

The same datamodule (CSV, template, sampling, split, label space), the same scoring path (thresholds tuned on
the validation rows, every metric), and the same run directory as a transformer run: metrics.json,
per_class.csv, val_probs.npz, plots, logger output, timing.json; the model in ``checkpoints/model.skops``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from genre_lab.framework.loggers import finish_logger, instantiate_loggers
from genre_lab.io import write_json
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring import plots
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score
from genre_lab.scoring.results import publish
from genre_lab.scoring.seed_groups import config_id

log = logging.getLogger(__name__)


def fit_baseline(cfg: DictConfig, datamodule: Any, decoder: Decoder, out: Path) -> dict[str, Any]:
    started = time.time()
    layout = RunLayout(out)  # (a directory holding a model was refused before: train.resume_checkpoint)
    space = datamodule.label_space
    texts, targets, _ = datamodule.texts_and_targets("train")
    log.info(datamodule.describe())
    model = hydra.utils.instantiate(cfg.model, label_names=list(space.names), multi_label=space.multi_label,
                                    seed=cfg.seed).fit(texts, targets)
    fit_seconds = time.time() - started
    val_texts, val_targets, val_ids = datamodule.texts_and_targets("val")
    probs = model.predict_proba(val_texts)
    tuner = hydra.utils.instantiate(cfg.tuning) if cfg.get("tuning") else None
    val = score(probs, val_targets, decoder, space.names, "val", tuner)
    StoredProbs(np.asarray(val_ids), probs, val_targets, space.names).save(layout.val_probs)
    metrics = dict(val.metrics)
    if datamodule.hparams.test_csv:
        test_texts, test_targets, _ = datamodule.texts_and_targets("test")
        if test_targets is not None:
            test = score(model.predict_proba(test_texts), test_targets, val.decoder, space.names, "test").metrics
            metrics.update({k: v for k, v in test.items() if k.startswith("test/")})
    model.save(layout.baseline, {"decoder": val.decoder.to_dict(), "data": dict(datamodule.hparams),
                                 "label_space": space.to_dict()})
    metrics.update({"best_checkpoint": str(layout.baseline), "model": "tfidf_lr",
                    "config_id": config_id(OmegaConf.to_container(cfg, resolve=False))})
    write_json(layout.timing, {"fit_seconds": fit_seconds, "train_samples": len(texts),
                               "job_started_at": started, "fit_ended_at": time.time()})
    images = plots.write_all(out, probs, val_targets, val.decisions, space, val.decoder)
    loggers = instantiate_loggers(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "config_id": metrics["config_id"]})
    publish(out, metrics, val.per_class, images, loggers, "val", "validation (TF-IDF baseline)", log_prefix="final/")
    for logger in loggers:
        finish_logger(logger)
    log.info("results in %s; the model in %s", out, layout.baseline)
    return metrics
