"""Slots: where the Optuna sweeper runs its trials, ``n_jobs`` at a time, with no round barrier.

The sweeper starts a trial in a free slot and polls the slots; the moment one trial ends (complete, pruned or
failed) its slot takes the next trial. Three kinds, by launcher:
- ``InlineSlots`` (Hydra's basic launcher): one slot, the trial runs in the sweeper's own process;
- ``LauncherSlots`` (``hydra/launcher=parallel``): a local process per trial; slot ``i`` keeps its share of the
  machine (its GPUs, its CPU threads) from trial to trial;
- ``ThreadSlots`` (any other launcher: submitit/SLURM, Ray): each slot is a thread that hands one job at a time
  to the launcher and waits for it; the launcher places it (SLURM allocates its GPUs, Ray its resources).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from hydra.core.utils import JobReturn

from genre_lab.framework.compat import start_ray_of

log = logging.getLogger(__name__)


class Slots(Protocol):
    count: int

    def start(self, slot: int, overrides: list[str], job_idx: int) -> Any:
        """Start one job in ``slot``; a handle for ``result``."""

    def result(self, handle: Any) -> tuple[bool, JobReturn | None]:
        """(done, its JobReturn: None when the job ended without one)."""

    def stop(self, handles: list[Any]) -> None:
        """Stop running jobs (the sweeper is stopping)."""


class InlineSlots:
    """One slot; ``start`` runs the job to its end in this process."""

    count = 1

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher

    def start(self, slot: int, overrides: list[str], job_idx: int) -> Any:
        return only(self.launcher.launch([overrides], initial_job_idx=job_idx))

    def result(self, handle: Any) -> tuple[bool, JobReturn | None]:
        return True, handle

    def stop(self, handles: list[Any]) -> None:
        pass


class LauncherSlots:
    """Slots of a launcher that starts one job at a time in a given share and reports when it ends:
    ``plan(n) -> shares``, ``start(share, overrides, idx) -> job``, ``finished(job, overrides)``, ``cancel(job)``
    (hydra_plugins/genre_lab_sweeper/genre_lab_parallel.py)."""

    def __init__(self, launcher: Any, count: int) -> None:
        self.launcher, self.count = launcher, count
        self.shares = launcher.plan(count)

    def start(self, slot: int, overrides: list[str], job_idx: int) -> Any:
        return self.launcher.start(self.shares[slot], overrides, job_idx), overrides

    def result(self, handle: Any) -> tuple[bool, JobReturn | None]:
        job, overrides = handle
        return self.launcher.finished(job, overrides)

    def stop(self, handles: list[Any]) -> None:
        for job, _ in handles:
            self.launcher.cancel(job)


class ThreadSlots:
    """Slots for any Hydra launcher: a thread per slot launches one job and waits for it."""

    def __init__(self, launcher: Any, count: int) -> None:
        self.launcher, self.count = launcher, count
        start_ray_of(launcher)  # its first launch is not thread-safe
        self.pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="genre_lab-slot")

    def start(self, slot: int, overrides: list[str], job_idx: int) -> Any:
        return self.pool.submit(self.launcher.launch, [overrides], initial_job_idx=job_idx)

    def result(self, handle: Future) -> tuple[bool, JobReturn | None]:
        if not handle.done():
            return False, None
        try:
            return True, only(handle.result())
        except Exception as err:  # e.g. a SLURM job killed by the cluster: this trial fails, the search goes on
            log.error("the launcher failed (%s: %s); the trial is marked failed", type(err).__name__, err)
            return True, None

    def stop(self, handles: list[Any]) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def only(returns: Any) -> JobReturn | None:
    returns = list(returns)
    return returns[0] if returns else None


def slots_for(launcher: Any, count: int) -> Slots:
    if type(launcher).__name__ == "BasicLauncher":
        return InlineSlots(launcher)
    if all(hasattr(launcher, name) for name in ("plan", "start", "finished", "cancel")):
        return LauncherSlots(launcher, count)
    return ThreadSlots(launcher, count)
