"""The classifier a run trains, from its config and the training labels' statistics (``data.LabelStats``)."""

from __future__ import annotations

from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from genre_lab.data.movie_data import LabelStats
from genre_lab.model.module import check_single_label, head_of
from genre_lab.scoring.decoding import Decoder


def build_model(cfg: DictConfig, stats: LabelStats, decoder: Decoder | None = None) -> pl.LightningModule:
    """``cfg.model`` with the genres, prior and class weights of ``stats``; the optimizer and scheduler as plain
    configs (the module instantiates them, so checkpoints hold no objects)."""
    check_single_label(head_of(cfg.model)["objective"], stats.rows_with_several_genres, stats.rows, stats.source)
    pos_weight: Any = cfg.model.get("pos_weight")
    if pos_weight == "auto":
        pos_weight = stats.pos_weight()
    recipe = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("optimizer", "scheduler", "peft")
              if cfg.get(k)}
    # Through a partial: Hydra would try to merge the Decoder object into the config.
    return hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
        label_names=list(stats.space.names),
        multi_label=stats.space.multi_label,
        pos_weight=pos_weight,
        label_prior=stats.prior,
        decoder=decoder or hydra.utils.instantiate(cfg.decode),
        **recipe,
    )
