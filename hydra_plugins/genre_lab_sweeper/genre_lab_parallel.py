"""The Hydra launcher ``hydra/launcher=parallel``: up to ``n_jobs`` jobs at once on this machine, each in a fresh
process (submitit's local executor) with its own share of the machine (genre_lab.sweeps.shares): its own GPUs
through ``CUDA_VISIBLE_DEVICES`` and ``cores // n_jobs`` CPU threads. submitit_local instead starts every job on
the same first GPU(s) with all cores.

Works under any sweeper: our Optuna sweeper (``hydra.sweeper.n_jobs`` trials at once, each slot refilled as
soon as its trial ends) and Hydra's grid sweeper. Each job's stdout/stderr are in ``<sweep dir>/.submitit/<pid>/``.
No ``from __future__ import annotations`` (see genre_lab_optuna.py). genre_lab is imported inside functions:
Hydra imports every plugin module when any Hydra app starts, and genre_lab brings torch.
"""

import contextlib
import logging
import os
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


@dataclass
class GenreLabParallelConf:
    _target_: str = "hydra_plugins.genre_lab_sweeper.genre_lab_parallel.ParallelLauncher"
    # jobs at once: the Optuna sweeper's round size, else 2
    n_jobs: Any = "${oc.select:hydra.sweeper.n_jobs,2}"
    # GPUs each job trains on (auto: one)
    gpus_per_job: Any = "${oc.select:trainer.devices,1}"
    # a job still running after this is stopped (submitit's local default would be 2 minutes)
    timeout_min: float = 7 * 24 * 60
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    poll_s: float = 1.0


ConfigStore.instance().store(group="hydra/launcher", name="parallel", node=GenreLabParallelConf,
                             provider="genre_lab")


class ParallelLauncher(Launcher):
    def __init__(self, n_jobs: Any = 2, gpus_per_job: Any = 1, timeout_min: float = 7 * 24 * 60,
                 submitit_folder: str = ".submitit/%j", poll_s: float = 1.0) -> None:
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            from genre_lab.errors import GenreLabError  # deferred: module docstring

            raise GenreLabError(f"hydra.launcher.n_jobs={n_jobs!r} must be a whole number ≥ 1 (jobs run at once)")
        self.n_jobs, self.gpus_per_job = n_jobs, gpus_per_job
        self.timeout_min, self.submitit_folder, self.poll_s = float(timeout_min), str(submitit_folder), poll_s
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def __call__(self, overrides: list[str], job_num: int, singleton_state: dict[Any, Any]) -> JobReturn:
        """Runs in the job's own process (pickled there by submitit)."""
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.id = f"job_id_for_{job_num}"
            config.hydra.job.num = job_num
        return run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        """Every job, ``n_jobs`` at once; a freed slot takes the next job at once (Hydra's grid sweeper)."""
        shares = self.plan(self.n_jobs)
        pending = list(enumerate(job_overrides, initial_job_idx))
        running: dict[int, tuple[int, list[str], Any]] = {}  # slot -> (job number, overrides, submitit job)
        results: dict[int, JobReturn] = {}
        try:
            while pending or running:
                for slot in [s for s in range(self.n_jobs) if s not in running][:len(pending)]:
                    idx, overrides = pending.pop(0)
                    running[slot] = (idx, list(overrides), self.start(shares[slot], list(overrides), idx))
                time.sleep(self.poll_s)
                for slot, (idx, overrides, job) in list(running.items()):
                    done, ret = self.finished(job, overrides)
                    if done:
                        results[idx] = ret
                        del running[slot]
        except BaseException:  # Ctrl-C or a bug here: do not leave jobs running unwatched
            for _, _, job in running.values():
                self.cancel(job)
            raise
        return [results[i] for i in sorted(results)]

    # One job at a time in a given share: what the Optuna sweeper's slots use (genre_lab/sweeps/slots.py).
    def plan(self, n_slots: int) -> list[Any]:
        from genre_lab.sweeps.shares import available_cores, gpus_per_job, plan_shares, visible_gpus  # deferred

        assert self.config is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        return plan_shares(n_slots, visible_gpus(), available_cores(), gpus_per_job(self.gpus_per_job))

    def start(self, share: Any, overrides: list[str], idx: int) -> Any:
        import submitit  # deferred: module docstring

        executor = submitit.LocalExecutor(folder=self.submitit_folder)
        # the job stops (saving interrupted.ckpt) when this process is gone: genre_lab/framework/callbacks.py
        environment = {**share.environment(), "GENRE_LAB_SWEEPER_PID": str(os.getpid())}
        setup = [f"export {k}={shlex.quote(v)}" for k, v in environment.items()]
        executor.update_parameters(timeout_min=self.timeout_min, setup=setup)
        log.info("\t#%d : %s  [%s]", idx, " ".join(filter_overrides(overrides)), share.describe())
        return executor.submit(self, list(overrides), idx, Singleton.get_state())

    def finished(self, job: Any, overrides: list[str]) -> tuple[bool, Any]:
        return (True, collect(job, overrides)) if job.done() else (False, None)

    def cancel(self, job: Any) -> None:
        """SIGTERM to the job's processes, which save interrupted.ckpt as a preempted run does (submitit's own
        cancel sends SIGINT to the shell that runs the setup lines, which does not pass it on)."""
        for pid in descendants(int(job.job_id)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        job.cancel(check=False)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux /proc; none elsewhere, where only submitit's cancel is sent)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


def collect(job: Any, overrides: list[str]) -> JobReturn:
    """The job's JobReturn; a process that died without one (killed, out of memory) is a failed job."""
    try:
        return job.results()[0]
    except Exception as err:  # submitit's UncompletedJobError / FailedJobError carry the job's stderr tail
        from genre_lab.framework.compat import failed_job  # deferred: see the module docstring

        log.error("job %s (%s) ended without a result: %s", job.job_id, " ".join(overrides), err)
        return failed_job(overrides, err)
