"""The one Trainer builder (train and bench): the configured ``trainer`` with the configured callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from genre_lab.errors import GenreLabError
from genre_lab.framework.loggers import instantiate_all


def build_trainer(cfg: DictConfig, loggers: Sequence[Any] | bool, extra_callbacks: Sequence[Any] = (),
                  **overrides: Any) -> pl.Trainer:
    """``cfg.trainer`` (with ``overrides``), its callbacks plus ``extra_callbacks``; settings Lightning rejects
    (precision, devices, …) are a user error."""
    callbacks = instantiate_all(cfg.get("callbacks")) + list(extra_callbacks)
    try:
        return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, **overrides)
    except InstantiationException as err:
        if not isinstance(err.__cause__, (MisconfigurationException, ValueError)):
            raise
        raise GenreLabError(f"trainer settings rejected by Lightning: {err.__cause__}. Fix the trainer.* "
                            "override (`--cfg job` prints them)") from err
