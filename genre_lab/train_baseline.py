"""`genre-lab train model=tfidf_lr`: fit a model that reads texts itself (the TF-IDF baseline) without Lightning.

The same data (CSV, template, sampling, split, label space: ``MovieData``), the same scoring path (thresholds tuned on
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
from omegaconf import DictConfig

from genre_lab.data.movie_data import MovieData
from genre_lab.framework.loggers import instantiate_loggers, log_config
from genre_lab.io import write_json
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import Score
from genre_lab.scoring.seed_groups import config_id

log = logging.getLogger(__name__)


def fit_baseline(cfg: DictConfig, data: MovieData, decoder: Decoder, out: Path) -> dict[str, Any]:
    started = time.time()
    layout = RunLayout(out)  # (a directory holding a model was refused before: train.resume_checkpoint)
    space = data.label_space
    texts, targets, _ = data.texts_and_targets("train")
    model = hydra.utils.instantiate(cfg.model, label_names=list(space.names), multi_label=space.multi_label,
                                    seed=cfg.seed).fit(texts, targets)
    fit_seconds = time.time() - started
    val_texts, val_targets, val_ids = data.texts_and_targets("val")
    val = StoredProbs(np.asarray(val_ids), model.predict_proba(val_texts), val_targets, space.names)
    test = None
    if data.has_labels("test"):
        test_texts, test_targets, test_ids = data.texts_and_targets("test")
        test = StoredProbs(np.asarray(test_ids), model.predict_proba(test_texts), test_targets, space.names)
    write_json(layout.timing, {"fit_seconds": fit_seconds, "train_samples": len(texts),
                               "job_started_at": started, "fit_ended_at": time.time()})
    loggers = instantiate_loggers(cfg.get("logger"))
    log_config(loggers, cfg, config_id(cfg))

    def keep(scored: Score) -> None:  # the model file holds the tuned rule
        model.save(layout.baseline, {"decoder": scored.decoder.to_dict(), "data": dict(data.settings),
                                     "label_space": space.to_dict()})

    facts = {"best_checkpoint": str(layout.baseline), "model": "tfidf_lr", "config_id": config_id(cfg)}
    report = Report(out, "val", "validation (TF-IDF baseline)", loggers, log_prefix="final/", finish_loggers=True)
    metrics, _ = finish(val, space, decoder, build_tuner(cfg), report, facts, test, keep)
    log.info("results in %s; the model in %s", out, layout.baseline)
    return metrics
