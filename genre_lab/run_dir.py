"""A training run never writes into a directory that already holds checkpoints, unless it resumes them.

The check runs twice: as a Hydra callback before Hydra writes anything into the run directory (its
``.hydra/`` config and job log would otherwise overwrite the earlier run's), and in ``train()`` for
callers that bypass the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre_lab.errors import GenreLabError, exit_with


def is_first_rank() -> bool:
    """Rank processes of a DDP job re-enter the same directory; only the first one decides."""
    return all(int(os.environ.get(v, 0)) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def existing_checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))


def refuse_reuse(run_dir: Path, resume: bool) -> None:
    """GenreLabError when ``run_dir`` holds checkpoints and this is not a resume."""
    existing = existing_checkpoints(run_dir)
    if existing and not resume and is_first_rank():
        raise GenreLabError(f"{run_dir} already holds checkpoints {existing}; resume=true to continue that run, "
                            "or choose a new hydra.run.dir")


class ProtectRunDir(Callback):
    """Hydra callback: the same refusal, before the run directory is touched (train configs only)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "resume" not in config:  # eval, predict, … write into fresh directories of their own
            return
        try:
            run_dir = Path(config.hydra.run.dir)
        except Exception:  # an interpolation only resolvable inside the job: train() checks again
            return
        try:
            refuse_reuse(run_dir, bool(config.get("resume")))
        except GenreLabError as err:
            if config.get("show_traceback"):
                raise
            exit_with(err)
