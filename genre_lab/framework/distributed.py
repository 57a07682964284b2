"""Hydra + non-spawn DDP: every rank runs in the job's own run directory.

Lightning relaunches the training script once per extra rank. Its Hydra support re-uses the command
line, which breaks twice for us: the console script's sub-command (`genre-lab train`) is not a file to
run, and inside a multirun the command line is the whole sweep (each rank would start a sweep of its
own, in a new directory). Instead each rank runs `python -m genre_lab.train` with the job's concrete
overrides in the job's output directory, writing no `.hydra/` of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from pytorch_lightning.utilities.rank_zero import rank_zero_only


def rank_command(local_rank: int) -> tuple[Sequence[str], str]:
    hc = HydraConfig.get()
    # hydra.mode=RUN: a config that sets MULTIRUN (hparams_search=optuna) would make each rank a sweep of its own
    command = [sys.executable, "-m", "genre_lab.train", *hc.overrides.task,
               f"hydra.run.dir={hc.runtime.output_dir}", "hydra.output_subdir=null", "hydra.mode=RUN",
               f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    return command, get_original_cwd()


def install_rank_command() -> None:
    """Make Lightning's subprocess launcher start ranks with ``rank_command`` (through genre_lab.framework.compat)."""
    from genre_lab.framework.compat import set_rank_command  # deferred: imports Lightning's launcher

    set_rank_command(rank_command)


@contextmanager
def job_scope() -> Iterator[None]:
    """Leave no distributed state behind a job: the next job of a multirun runs in this same process.

    Lightning leaves the process group open and rank variables (LOCAL_RANK, MASTER_PORT, …) in the
    environment; a second DDP job would then talk to the first job's exited ranks, or believe its ranks
    were started externally and wait for peers that never come. The variables the job added or changed are
    put back (whichever they are: the set differs between Lightning's launchers and versions).
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        import torch.distributed as dist  # deferred: only a job that used DDP gets here

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update({k: v for k, v in saved.items() if os.environ.get(k) != v})


class RankZeroConsole(logging.Filter):
    """Console lines from global rank zero only; warnings and errors from every rank (each rank's log file keeps
    all its lines). As lightning-hydra-template's RankedLogger, but in one place for every module's logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0 or record.levelno >= logging.WARNING


def rank_zero_console() -> None:
    """Put ``RankZeroConsole`` on the console handlers Hydra configured, so a DDP run prints each line once."""
    for handler in logging.getLogger().handlers:
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and not any(isinstance(f, RankZeroConsole) for f in handler.filters):
            handler.addFilter(RankZeroConsole())
