"""Dividing one machine between jobs that run at once (``hydra/launcher=parallel``).

Each concurrent job holds a slot; slot ``i`` of ``n`` gets its own GPUs (through ``CUDA_VISIBLE_DEVICES``, set
before the job's process starts, so CUDA never sees the others) and ``cores // n`` CPU threads, so ``n`` jobs
never oversubscribe the cores (torch's intra-op pool, OpenMP/MKL and the tokenizers' Rayon pool all read the
thread variables at start-up).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from genre_lab.errors import GenreLabError

log = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


@dataclass(frozen=True)
class Share:
    """What one concurrent job may use: GPU ids (None: the machine has none, leave CUDA alone) and threads."""

    gpus: tuple[str, ...] | None
    threads: int

    def environment(self) -> dict[str, str]:
        env = {name: str(self.threads) for name in THREAD_VARIABLES}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def describe(self) -> str:
        gpus = "" if self.gpus is None else f"GPU {','.join(self.gpus)}, "
        return f"{gpus}{self.threads} CPU thread{'s' * (self.threads != 1)}"


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set (indices or UUIDs), else all."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch  # deferred: tests/conftest.py plans thread shares before torch starts its thread pool

    return [str(i) for i in range(torch.cuda.device_count())]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpus_per_job(devices: object) -> int:
    """GPUs one job trains on, from its ``trainer.devices``: a count, a list of ids, or auto/-1 (one)."""
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return max(1, len(devices))
    if isinstance(devices, str) and devices.strip().isdigit() and int(devices) > 0:
        return int(devices)
    return 1


def plan_shares(n_slots: int, gpus: Sequence[str], cores: int, per_job: int = 1) -> list[Share]:
    """One share per slot. GPUs: disjoint blocks of ``per_job`` while they last; with more slots than blocks,
    slots wrap around and share GPUs (with a warning). Threads: ``cores // n_slots``, at least one."""
    if n_slots < 1:
        raise GenreLabError(f"hydra.launcher.n_jobs={n_slots} must be ≥ 1")
    threads = max(1, cores // n_slots)
    if n_slots > cores:
        log.warning("%d jobs at once on %d CPU cores: each gets 1 thread and the cores are oversubscribed; "
                    "set hydra.launcher.n_jobs ≤ %d", n_slots, cores, cores)
    if not gpus:
        return [Share(None, threads) for _ in range(n_slots)]
    if per_job > len(gpus):
        raise GenreLabError(f"each job trains on {per_job} GPUs (trainer.devices) but only {len(gpus)} are "
                            f"visible ({','.join(gpus)}); set trainer.devices ≤ {len(gpus)}")
    blocks = len(gpus) // per_job
    if n_slots > blocks:
        log.warning("%d jobs at once, %d GPU(s) each, on %d GPUs: jobs share GPUs (%d per block); set "
                    "hydra.launcher.n_jobs ≤ %d for one block each", n_slots, per_job, len(gpus),
                    -(-n_slots // blocks), blocks)
    return [Share(tuple(gpus[(slot % blocks) * per_job:(slot % blocks + 1) * per_job]), threads)
            for slot in range(n_slots)]
