"""Run and sweep directories are never written by two runs, and never reused, unless a run resumes its own.

The checks run as a Hydra callback before Hydra writes anything into the directory (its ``.hydra/`` config and
job log would otherwise overwrite the earlier run's), and again in ``train()`` for callers that bypass the CLI:
- a training run refuses a directory that holds checkpoints (``resume=true`` continues them);
- a multirun refuses a sweep directory that holds an earlier sweep (train: unless ``resume=true``);
- a run (or sweep) holds an exclusive lock on its directory while it runs, so a second one started at the
  same time into the same directory is refused instead of mixing its files with the first one's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre_lab.errors import GenreLabError, exit_with
from genre_lab.run_layout import RunLayout

LOCK_NAME = ".genre_lab.lock"


def is_first_rank() -> bool:
    """Rank processes of a DDP job re-enter the same directory; only the first one decides."""
    return all(int(os.environ.get(v, 0)) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def existing_checkpoints(run_dir: Path) -> list[str]:
    """The trained models a directory holds: Lightning checkpoints, a baseline's model, an ensemble's definition."""
    layout = RunLayout(run_dir)
    found = [p.name for p in layout.checkpoints.glob("*.ckpt")]
    return sorted(found + [p.name for p in (layout.baseline, layout.ensemble) if p.is_file()])


def refuse_reuse(run_dir: Path, resume: bool) -> None:
    """GenreLabError when ``run_dir`` holds checkpoints and this is not a resume."""
    existing = existing_checkpoints(run_dir)
    if existing and not resume and is_first_rank():
        continuable = any(name.endswith(".ckpt") for name in existing)  # a baseline or an ensemble is not resumed
        hint = "resume=true to continue that run, or " if continuable else ""
        raise GenreLabError(f"{run_dir} already holds a trained model {existing}; {hint}choose a new hydra.run.dir")


def earlier_sweep(sweep_dir: Path) -> list[str]:
    """What marks ``sweep_dir`` as holding an earlier sweep: its multirun.yaml and job directories."""
    if not sweep_dir.is_dir():
        return []
    marks = ["multirun.yaml"] if (sweep_dir / "multirun.yaml").is_file() else []
    jobs = [p.name for p in sweep_dir.iterdir() if RunLayout(p).hydra.is_dir() or RunLayout(p).checkpoints.is_dir()]
    return marks + sorted(jobs, key=lambda name: (len(name), name))  # 0, 1, …, 10


def refuse_earlier_sweep(sweep_dir: Path, resume: bool | None) -> None:
    """GenreLabError when ``sweep_dir`` holds an earlier sweep (``resume`` None: the command cannot resume)."""
    found = earlier_sweep(sweep_dir)
    if found and not resume:
        hint = ", or resume=true to continue its jobs' last.ckpt" if resume is not None else ""
        raise GenreLabError(f"hydra.sweep.dir={sweep_dir} already holds a sweep ({', '.join(found[:6])}"
                            f"{', …' if len(found) > 6 else ''}); its jobs' files would be overwritten. Choose a "
                            f"new hydra.sweep.dir{hint}")


def lock_directory(directory: Path, key: str) -> FileLock:
    """An exclusive lock on ``directory`` held until released or the process ends (the OS drops it on a crash)."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise GenreLabError(f"{key}={directory} is in use by another genre-lab run that is still running; wait "
                            f"for it to finish, or choose a new {key}") from None
    return lock


class ProtectRunDir(Callback):
    """Hydra callback: refuse reuse and lock the directory, before Hydra writes into it."""

    def __init__(self) -> None:
        self.lock: FileLock | None = None

    def __getstate__(self) -> dict[str, Any]:
        # submitit pickles Hydra's callbacks into every job; a FileLock cannot be pickled, and the lock belongs
        # to the sweep's process anyway
        return {**self.__dict__, "lock": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "resume" not in config or not is_first_rank():  # eval, predict, … write into fresh directories
            return
        try:
            run_dir = Path(config.hydra.run.dir)
        except Exception:  # an interpolation only resolvable inside the job: train() checks again
            return
        self._guard(config, run_dir, lambda: refuse_reuse(run_dir, bool(config.get("resume"))), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        resume = bool(config.get("resume")) if "resume" in config else None
        self._guard(config, sweep_dir, lambda: refuse_earlier_sweep(sweep_dir, resume), "hydra.sweep.dir")

    def _guard(self, config: DictConfig, directory: Path, check: Any, key: str) -> None:
        try:
            # A directory never locked before is checked first, read-only: a refused run must not leave even a
            # lock file in a finished directory. Where a lock file exists, a run still holding it is named first.
            if not (directory / LOCK_NAME).is_file():
                check()
            self.lock = lock_directory(directory, key)
            check()  # under the lock: no other run can be writing into it now
        except GenreLabError as err:
            if config.get("show_traceback"):
                raise
            exit_with(err)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
