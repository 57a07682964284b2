"""Nothing lost when a sweeper or a worker dies: stale trials are found and re-run from their own last.ckpt.

- **Heartbeat** (Optuna's on RDB storages: sqlite, PostgreSQL, MySQL; ours on journals, storage.beating_journal):
  the sweeper records a beat for each of its running trials every ``heartbeat_interval`` seconds; a RUNNING
  trial whose last beat is older than ``grace_period`` (its sweeper was killed, its SLURM job preempted) is failed
  by any sweeper on the study, at its start or while it runs (``optuna.storages.fail_stale_trials``).
- **Retry**: a stale trial, or one whose process died without a result (kill -9 of a parallel worker), is
  enqueued again with the same parameters, linked to it (``retry_of``, ``retries``, ``job_dir``), at most
  ``max_retries`` times. The retry trains in the dead trial's own directory, resumed from its ``last.ckpt``
  (``resume=true``): the interrupted epoch is the only work done twice, the directory keeps the whole history.
  A retry never counts in ``n_trials``: it finishes a trial that was already counted.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from genre_lab.errors import GenreLabError
from genre_lab.runs.guard import stash_started_record
from genre_lab.runs.layout import RunLayout

log = logging.getLogger(__name__)

RETRY_OF, RETRIES, JOB_DIR = "retry_of", "retries", "job_dir"
CARRIED = (JOB_DIR, "confirm_of", "seed")  # what a retry keeps of the trial it retries (confirm.py's tags)


def check_heartbeat(interval: Any, grace: Any, storage_url: str | None) -> tuple[int, int] | None:
    """(interval, grace period) in seconds, or None (no heartbeat). ``interval`` null: 60 s with a persistent
    storage (RDB or journal), off in memory; set for an in-memory study: GenreLabError."""
    if interval is None and grace is None and storage_url is None:
        return None
    if storage_url is None:
        key, value = ("heartbeat_interval", interval) if interval is not None else ("grace_period", grace)
        raise GenreLabError(f"hydra.sweeper.{key}={value} needs a persistent storage: hydra.sweeper.storage=null "
                            "keeps the study in memory, which dies with its sweeper; set hydra.sweeper.storage="
                            "sqlite:///optuna.db (or journal:///path/study.log, postgresql://…, mysql://…)")
    interval = 60 if interval is None else interval
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise GenreLabError(f"hydra.sweeper.heartbeat_interval={interval!r} must be a whole number of seconds ≥ 1 "
                            "(or null: 60 with a persistent storage)")
    grace = 3 * interval if grace is None else grace
    if isinstance(grace, bool) or not isinstance(grace, int) or grace <= interval:
        raise GenreLabError(f"hydra.sweeper.grace_period={grace!r} must be a whole number of seconds larger than "
                            f"heartbeat_interval={interval} (e.g. {3 * interval})")
    return interval, grace


def retry(study: Any, trial: Any, max_retries: int, why: str) -> int | None:
    """Enqueue ``trial`` (a FrozenTrial that died) again with the same parameters, linked to it; the number of
    retries so far, or None when it had its ``max_retries``."""
    retries = int(trial.user_attrs.get(RETRIES, 0)) + 1
    if retries > max_retries:
        log.warning("trial %d %s; it had its %d retr%s (hydra.sweeper.max_retries) and stays FAIL", trial.number,
                    why, max_retries, "y" if max_retries == 1 else "ies")
        return None
    carried = {k: trial.user_attrs[k] for k in CARRIED if k in trial.user_attrs}
    attrs = {**carried, RETRY_OF: trial.number, RETRIES: retries}
    study.enqueue_trial(trial.params, user_attrs=attrs)
    log.warning("trial %d %s: enqueued again with the same parameters (retry %d of %d)", trial.number, why, retries,
                max_retries)
    return retries


def resume_dir(trial: Any) -> Path | None:
    """The directory a retry continues: the dead trial's, when it holds a last.ckpt (else it starts afresh)."""
    job_dir = trial.user_attrs.get(JOB_DIR)
    if trial.user_attrs.get(RETRY_OF) is None or job_dir is None:
        return None
    return Path(job_dir) if RunLayout(Path(job_dir)).last.is_file() else None


class Heartbeat:
    """A thread that records a beat for each running trial and fails the study's stale trials (which the
    storage's callback then retries)."""

    def __init__(self, study: Any, storage: Any, interval: int, running: Callable[[], list[int]]) -> None:
        self.study, self.storage, self.interval, self.running = study, storage, interval, running
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="genre_lab-heartbeat", daemon=True)

    def beat(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)

    def fail_stale(self) -> None:
        import optuna  # deferred: optuna is an optional extra

        with warnings.catch_warnings():  # experimental since Optuna 2.9, and the one public way to do it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                for trial_id in self.running():
                    self.beat(trial_id)
                self.fail_stale()
            except Exception as err:  # a storage hiccup must not kill the search; the next beat tries again
                log.warning("heartbeat: %s: %s", type(err).__name__, err)

    def __enter__(self) -> Heartbeat:
        self.fail_stale()  # trials left RUNNING by a sweeper that died
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval + 5)


def pending_retries(study: Any) -> bool:
    """Retries waiting in the study: run even after n_trials (they finish trials already counted)."""
    return any(t.user_attrs.get(RETRY_OF) is not None for t in study.get_trials(deepcopy=False,
                                                                                states=(TrialState.WAITING,)))


def continue_in(job: list[str], directory: Path | None, trial: Any) -> list[str]:
    """A retry's overrides: train on in the dead trial's directory from its last.ckpt (``resume=true``)."""
    if directory is None:
        return job
    stash_started_record(directory)
    trial.set_user_attr(JOB_DIR, str(directory))
    log.info("trial %d resumes trial %s from %s", trial.number, trial.user_attrs.get(RETRY_OF),
             RunLayout(directory).last)
    return [*[o for o in job if not o.startswith("hydra.sweep.subdir=")], f"hydra.sweep.subdir={directory}",
            "resume=true"]
