"""Run and sweep directories are never written by two runs, and never reused, unless a run resumes its own.

The checks run as a Hydra callback before Hydra writes anything into the directory (its ``.hydra/`` config and
job log would otherwise overwrite the earlier run's), and again in ``train()`` for callers that bypass the CLI:
- no command (train, eval, predict, export, ensemble, bench) runs into a directory that holds an earlier run's
  results (``RunLayout.record``: checkpoints, figures, predictions); ``resume=true`` continues a
  training run's ``last.ckpt`` under the settings it started with (genre_lab/runs/resume.py), and its first
  ``.hydra/`` files are kept: each resume's own go to ``.hydra/resumes/<n>/``;
- a multirun refuses a sweep directory that holds an earlier sweep (train: unless ``resume=true``);
- a run (or sweep) holds an exclusive lock on its directory while it runs, so a second one started at the
  same time into the same directory is refused instead of mixing its files with the first one's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from genre_lab.errors import GenreLabError, exit_with
from genre_lab.io import atomic_write_text
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.resume import check_resume, finished_already, nothing_to_do

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
    """GenreLabError when a training run may not write into ``run_dir``: it holds a trained model and this is not a
    resume, any other run's results, or (``resume``) no last.ckpt to continue."""
    if not is_first_rank():
        return
    layout = RunLayout(run_dir)
    if resume:
        if not layout.last.is_file():
            raise GenreLabError(f"resume=true but {layout.last} does not exist; point hydra.run.dir at the run to "
                                "resume")
        return
    existing = existing_checkpoints(run_dir)
    if existing:
        continuable = any(name.endswith(".ckpt") for name in existing)  # a baseline or an ensemble is not resumed
        hint = "resume=true to continue that run, or " if continuable else ""
        raise GenreLabError(f"{run_dir} already holds a trained model {existing}; {hint}choose a new hydra.run.dir")
    refuse_record(run_dir, "train")


def refuse_record(run_dir: Path, command: str) -> None:
    """GenreLabError when ``run_dir`` holds an earlier run's results (RunLayout.record), which ``command`` would
    write over or mix with its own."""
    found = RunLayout(run_dir).record()
    if found and is_first_rank():
        raise GenreLabError(f"hydra.run.dir={run_dir} already holds an earlier run's results ({', '.join(found)}); "
                            f"genre-lab {command} never writes into another run's directory: choose a new "
                            "hydra.run.dir, or leave it out (each run gets its own under outputs/)")


class NothingToDo(Exception):
    """A resume of a finished run that would train nothing more: the run is left as it is, exit code 0."""


def check_resumed_run(config: DictConfig, run_dir: Path) -> None:
    """Before Hydra writes: refuse a resume that changes the run's settings; NothingToDo for a finished run."""
    refuse_reuse(run_dir, resume=True)
    check_resume(config, run_dir, quiet=True)
    if finished_already(run_dir, config):
        raise NothingToDo(nothing_to_do(run_dir))


HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
STASH = "started"  # .hydra/started/: a run's first record, kept while a retry in another process resumes it


def read_started_record(run_dir: Path) -> dict[str, str]:
    """A run's first ``.hydra`` files, read before a resume's Hydra writes its own over them."""
    hydra_dir = RunLayout(run_dir).hydra
    return {name: (hydra_dir / name).read_text() for name in HYDRA_FILES if (hydra_dir / name).is_file()}


def keep_started_record(run_dir: Path, started: dict[str, str]) -> Path:
    """After Hydra wrote this resume's ``.hydra`` files: move them to ``.hydra/resumes/<n>/`` and put the run's
    first ones back, so the record says how the run started and each resume is appended to its history."""
    layout = RunLayout(run_dir)
    earlier = layout.resume_dirs()
    target = layout.resumes / str(int(earlier[-1].name) + 1 if earlier else 1)
    target.mkdir(parents=True)
    for name, text in started.items():
        written = layout.hydra / name
        if written.is_file():
            written.replace(target / name)
        atomic_write_text(written, text)
    return target


def stash_started_record(run_dir: Path) -> None:
    """Before a job resumes ``run_dir`` in another process (a retried Optuna trial): keep its first ``.hydra``
    files where the job's own, written by Hydra before any callback runs, cannot replace them."""
    stash = RunLayout(run_dir).hydra / STASH
    stash.mkdir(parents=True, exist_ok=True)
    for name, text in read_started_record(run_dir).items():
        atomic_write_text(stash / name, text)


def take_stashed_record(run_dir: Path) -> dict[str, str]:
    stash = RunLayout(run_dir).hydra / STASH
    if not stash.is_dir():
        return {}
    started = {p.name: p.read_text() for p in stash.iterdir() if p.name in HYDRA_FILES}
    shutil.rmtree(stash)
    return started


def earlier_sweep(sweep_dir: Path) -> list[str]:
    """What marks ``sweep_dir`` as holding an earlier sweep: its multirun.yaml and job directories."""
    if not sweep_dir.is_dir():
        return []
    marks = ["multirun.yaml"] if (sweep_dir / "multirun.yaml").is_file() else []
    jobs = [p.name for p in sweep_dir.iterdir() if RunLayout(p).hydra.is_dir() or RunLayout(p).checkpoints.is_dir()]
    return marks + sorted(jobs, key=lambda name: (len(name), name))  # 0, 1, …, 10


SEARCH_GOES_ON = ("an Optuna search goes on by running it again with the same hydra.sweeper.storage and "
                  "study_name (a file or database storage: sqlite:///…, journal:///…), which adds trials to its study "
                  "and resumes the ones its sweeper left unfinished, in this directory or a new one")


def same_search(sweep_dir: Path, config: DictConfig) -> bool:
    """True when ``sweep_dir`` holds an Optuna search on the same persistent study as ``config``'s: running the
    command again continues it there (new trials get new numbers; retries resume their own directories)."""
    earlier = sweep_dir / "multirun.yaml"
    storage = config.hydra.sweeper.get("storage")
    if storage is None or not earlier.is_file():
        return False
    before = OmegaConf.load(earlier).hydra.sweeper
    return before.get("storage") == storage and before.get("study_name") == config.hydra.sweeper.get("study_name")


def refuse_earlier_sweep(sweep_dir: Path, resume: bool | None, search: bool = False, continues: bool = False) -> None:
    """GenreLabError when ``sweep_dir`` holds an earlier sweep (``resume`` None: the command cannot resume; an
    Optuna ``search`` that ``continues`` the same study may go on there), and for ``resume=true`` on a search,
    whose trials would each fail for want of a last.ckpt."""
    if search and resume:
        raise GenreLabError(f"resume=true continues single runs and grid multiruns from their last.ckpt; "
                            f"{SEARCH_GOES_ON} (drop resume=true)")
    if search and continues:
        return
    found = earlier_sweep(sweep_dir)
    if found and not resume:
        hint = ", or resume=true to continue its jobs' last.ckpt" if resume is not None else ""
        if search:
            hint = f"; {SEARCH_GOES_ON}"
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
    """Hydra callback: refuse reuse and lock the directory before Hydra writes into it; keep a resumed run's first
    ``.hydra`` files once Hydra has written the resume's."""

    def __init__(self) -> None:
        self.lock: FileLock | None = None
        self.started: dict[str, dict[str, str]] = {}  # resumed run directory -> its first .hydra files

    def __getstate__(self) -> dict[str, Any]:
        # submitit pickles Hydra's callbacks into every job; a FileLock cannot be pickled, and the lock belongs
        # to the sweep's process anyway
        return {**self.__dict__, "lock": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_first_rank():
            return
        try:
            run_dir = Path(config.hydra.run.dir)
        except Exception:  # an interpolation only resolvable inside the job: train() checks again
            return
        self._guard(config, run_dir, lambda: self._check_run(config, run_dir), "hydra.run.dir")

    def _check_run(self, config: DictConfig, run_dir: Path) -> None:
        if "resume" not in config:  # eval, predict, export, ensemble, bench: always a new directory
            refuse_record(run_dir, str(config.get("task_name", "")))
        elif config.resume and config.data.get("folds") and config.data.get("fold") is None:
            raise GenreLabError(f"resume=true with data.folds={config.data.folds}: a cross-validation goes on when "
                                "the same command runs again without resume=true (its finished folds are kept, a "
                                "stopped fold resumes from its last.ckpt)")
        elif config.resume:
            check_resumed_run(config, run_dir)
            self.started[str(run_dir.resolve())] = read_started_record(run_dir)
        else:
            refuse_reuse(run_dir, resume=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        resume = bool(config.get("resume")) if "resume" in config else None
        search = "genre_lab_optuna" in str(config.hydra.sweeper.get("_target_", ""))
        continues = search and same_search(sweep_dir, config)
        self._guard(config, sweep_dir, lambda: refuse_earlier_sweep(sweep_dir, resume, search, continues),
                    "hydra.sweep.dir")
        if resume and sweep_dir.is_dir():  # each job's settings are checked in train(), once composed
            self.started = {str(job.resolve()): read_started_record(job) for job in sweep_dir.iterdir()
                            if RunLayout(job).config.is_file()}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job_dir = Path(config.hydra.runtime.output_dir)
        started = self.started.pop(str(job_dir.resolve()), None) or take_stashed_record(job_dir)
        if started:
            keep_started_record(job_dir, started)

    def _guard(self, config: DictConfig, directory: Path, check: Any, key: str) -> None:
        try:
            # A directory never locked before is checked first, read-only: a refused run must not leave even a
            # lock file in a finished directory. Where a lock file exists, a run still holding it is named first.
            if not (directory / LOCK_NAME).is_file():
                check()
            self.lock = lock_directory(directory, key)
            check()  # under the lock: no other run can be writing into it now
        except NothingToDo as done:
            self._release()
            print(f"genre-lab: {done}")
            raise SystemExit(0) from None
        except GenreLabError as err:
            self._release()
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
