"""Training callbacks of our own (Lightning's cover checkpoints, early stopping, LR monitoring)."""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genre_lab.runs.layout import RunLayout

log = logging.getLogger(__name__)


class EpochSeed(pl.Callback):
    """Reseed every RNG at the first batch of each epoch from (seed, epoch).

    An epoch's dropout masks and shuffling then depend only on the seed and the epoch number, so a run
    resumed from an epoch-end checkpoint replays the interrupted epoch exactly as an uninterrupted run.
    """

    def __init__(self, seed: int = 0) -> None:
        self.base = int(seed)  # the run's seed (conf/callbacks/epoch_seed.yaml: ${seed})

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        # At the first batch, not at epoch start: the data loader's iterator draws from the global RNG when it
        # is created, which Lightning does after epoch start, except in a fit's first epoch (a resumed one too).
        if batch_idx != 0:
            return
        # Python, NumPy and torch (CPU and CUDA) directly, not seed_everything: that would also rewrite the
        # PL_GLOBAL_SEED environment variable the run was started with (workers only pad: no randomness there).
        seed = (self.base * 1000 + trainer.current_epoch) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


class SaveOnInterrupt(pl.Callback):
    """On SIGTERM / SIGINT (Ctrl-C) during training, save ``checkpoints/interrupted.ckpt`` before exiting.

    ``resume=true`` continues from ``last.ckpt`` (an epoch boundary, so epochs are never half-counted);
    the interrupted checkpoint keeps the partial epoch's weights for inspection or ``ckpt_path=``.
    """

    def __init__(self, run_dir: str) -> None:
        self.path = RunLayout(run_dir).interrupted

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
            log.warning("interrupted at step %d: saved %s", trainer.global_step, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {}


class FlushLogs(pl.Callback):
    """Make the loggers write their buffered rows at every epoch start.

    Lightning's CSVLogger writes every 100 steps, so a run killed in epoch k would lose the last rows of the
    epochs before it; flushed here, ``csv/metrics.csv`` holds every completed epoch (and ``resume=true`` cuts off
    the interrupted one, see ``loggers.restore_history``).
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.save()


class StopWithSweeper(pl.Callback):
    """A sweep job started by a sweeper in another process (``hydra/launcher=parallel`` sets
    ``GENRE_LAB_SWEEPER_PID``) stops when that sweeper is gone (killed, even with -9): it sends itself SIGTERM,
    which saves ``interrupted.ckpt`` as a preempted run does, instead of training on as an orphan whose trial no
    one tells. The rerun of the search resumes it from ``last.ckpt``."""

    CHECK_EVERY_S = 1.0

    def __init__(self, sweeper_pid: int) -> None:
        self.pid, self.checked = sweeper_pid, 0.0

    @classmethod
    def from_environment(cls) -> StopWithSweeper | None:
        pid = os.environ.get("GENRE_LAB_SWEEPER_PID", "")
        return cls(int(pid)) if pid.isdigit() else None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if time.monotonic() - self.checked < self.CHECK_EVERY_S:
            return
        self.checked = time.monotonic()
        if not alive(self.pid):
            log.warning("the sweeper (pid %d) is gone: stopping this trial", self.pid)
            os.kill(os.getpid(), signal.SIGTERM)


def alive(pid: int) -> bool:
    """False for a process that has ended, a zombie (killed, its parent has not reaped it yet) included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): the signal test has to do
        return True
