"""Callbacks that tests inject into a real training process: a SIGKILL at a chosen point, a pause."""

import os
import signal

import pytorch_lightning as pl


class KillAt(pl.Callback):
    """SIGKILL in the ``batch``-th training batch of ``epoch`` (after that epoch's first optimizer steps)."""

    def __init__(self, epoch: int, batch: int = 1) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class HoldUntil(pl.Callback):
    """Block at the start of training until ``release`` exists: the run stays alive, holding its directory,
    for exactly as long as a test needs (at most ``timeout`` seconds)."""

    def __init__(self, release: str, timeout: float = 120.0) -> None:
        self.release, self.timeout = release, timeout

    def on_train_start(self, trainer, pl_module) -> None:
        import time
        from pathlib import Path

        deadline = time.time() + self.timeout
        while not Path(self.release).exists() and time.time() < deadline:
            time.sleep(0.05)
