"""Our Optuna sweeper (ask and tell), behind the Hydra plugin in ``hydra_plugins/genre_lab_sweeper``.

``n_jobs`` trials run at once, each in a slot (genre_lab/sweeps/slots.py: in-process, local processes, or any
Hydra launcher: submitit, SLURM, Ray); when one ends, the study is told its outcome (COMPLETE with the job's return
value, ``optimized_metric``; PRUNED; or FAIL) and its slot starts the next asked trial at once: a pruned trial
never leaves its slot idle until the others end. A failed trial never stops the search (up to
``max_failure_rate``). ``timeout`` is a wall-clock budget: no trial starts after it; running ones finish, or
with ``on_timeout=stop`` stop at their next epoch end as a pruned trial does.

Several sweep processes given the same ``storage`` and ``study_name`` share one study: the storage hands out
distinct trial numbers, and job directories are named by trial number. A rerun of a finished command continues
the study; its sampler is seeded from (seed, number of its first trial), so it proposes new points.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobReturn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from genre_lab.errors import GenreLabError, require_choice, require_int, require_number
from genre_lab.sweeps.confirm import (
    SEED,
    check_confirm,
    confirm_name,
    confirmation_table,
    enqueue,
    paired_figures,
    top_trials,
    write_confirmation,
)
from genre_lab.sweeps.outcome import job_outcome
from genre_lab.sweeps.progress import Running, Search, SweeperStopped, stop_on_sigterm
from genre_lab.sweeps.retention import keep_best_checkpoints
from genre_lab.sweeps.retries import (
    JOB_DIR,
    RETRY_OF,
    Heartbeat,
    check_heartbeat,
    continue_in,
    pending_retries,
    resume_dir,
    retry,
)
from genre_lab.sweeps.search_results import SearchFailed, refuse_no_result, tell, write_results
from genre_lab.sweeps.search_space import SearchSpace, parse_search_space
from genre_lab.sweeps.slots import slots_for
from genre_lab.sweeps.storage import absolute_url, open_storage, storage_lock
from genre_lab.sweeps.trial_link import IN_PROCESS, store_pruner, trial_id, trial_override

log = logging.getLogger(__name__)


def derive_seed(seed: int, first_trial: int) -> int:
    """A sampler seed for a sweep process whose first trial is ``first_trial``: reproducible for a fresh study,
    different for a rerun or a second process on the same study (their first trial numbers differ)."""
    return int(np.random.SeedSequence([int(seed), int(first_trial)]).generate_state(1)[0])


def make_sampler(config: DictConfig | None, first_trial: int) -> Any:
    if config is None:
        return optuna.samplers.TPESampler()
    seed = config.get("seed")
    return instantiate(config) if seed is None else instantiate(config, seed=derive_seed(seed, first_trial))


def plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class OptunaSweeper:
    """The sweep loop; ``hydra_plugins.genre_lab_sweeper`` wraps it as a Hydra ``Sweeper``."""

    def __init__(self, *, sampler: Any = None, pruner: Any = None, direction: Any = "maximize",
                 storage: str | None = None, study_name: str | None = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failure_rate: float = 1.0, keep_checkpoints: int | None = None, params: Any = None,
                 timeout: Any = None, on_timeout: str = "finish", barrier: bool = False,
                 heartbeat_interval: Any = None, grace_period: Any = None, max_retries: Any = 1,
                 confirm: Any = None) -> None:
        self.sampler_config = sampler
        self.pruner_config = plain(pruner)
        self.directions = [str(d) for d in direction] if isinstance(direction, Sequence) and not isinstance(
            direction, str) else [str(direction)]
        self.storage_url = absolute_url(storage)
        self.study_name = study_name
        self.n_trials = require_int(n_trials, "hydra.sweeper.n_trials", 1, 20)
        self.n_jobs = require_int(n_jobs, "hydra.sweeper.n_jobs", 1, 2)
        self.timeout = None if timeout is None else float(require_number(
            timeout, "hydra.sweeper.timeout", lambda v: v > 0, "> 0 (seconds of wall-clock) or null", "3600"))
        self.on_timeout = require_choice(on_timeout, "hydra.sweeper.on_timeout", ("finish", "stop"))
        self.barrier = bool(barrier)  # rounds of n_jobs trials, each waiting for its slowest (kept for benchmarks)
        self.max_failure_rate = float(max_failure_rate)
        self.heartbeat = check_heartbeat(heartbeat_interval, grace_period, self.storage_url)
        self.max_retries = require_int(max_retries, "hydra.sweeper.max_retries", 0, 1)
        self.confirm_k, self.confirm_seeds = check_confirm(plain(confirm), self.n_trials, len(self.directions))
        self.keep_checkpoints = check_keep(keep_checkpoints, len(self.directions))
        self.params = plain(params) or {}
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.validate: Any = None  # the Hydra sweeper's validate_batch_is_legal
        self.job_idx = 0
        self.seeded = False

    def setup(self, config: DictConfig, launcher: Any, validate: Any) -> None:
        self.config, self.launcher, self.validate = config, launcher, validate
        in_process = type(launcher).__name__ == "BasicLauncher"
        if in_process and self.n_jobs > 1:
            log.warning("hydra.sweeper.n_jobs=%d with the basic launcher: trials run one at a time in this "
                        "process; add hydra/launcher=parallel to run %d at once", self.n_jobs, self.n_jobs)
        if not in_process and self.storage_url is None:
            # jobs in other processes reach their trial (to be pruned) only through a storage on disk
            self.storage_url = absolute_url(f"journal://{Path(config.hydra.sweep.dir) / 'optuna.journal'}")
            log.info("hydra.sweeper.storage is null and jobs run in other processes: the study is kept in %s",
                     self.storage_url)

    def create_study(self) -> Any:
        # Optuna warns that its heartbeat "is supposed to be used with Study.optimize": this ask-and-tell loop
        # records the beats itself (sweeps/retries.Heartbeat)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)
        self.storage = open_storage(self.storage_url, self.heartbeat, lambda study, trial: retry(
            study, trial, self.max_retries, "was stale (its process stopped beating)"))
        return self.open_study(self.study_name, self.pruner_config)

    def open_study(self, name: str | None, pruner_config: Any, sampler: Any = None) -> Any:
        """The study ``name`` in this sweeper's storage (created if new), reachable by in-process jobs."""
        pruner = instantiate(pruner_config) if pruner_config else optuna.pruners.NopPruner()
        with storage_lock(self.storage_url):  # two sweeps starting at once on one sqlite file
            study = optuna.create_study(storage=self.storage, study_name=name, directions=self.directions,
                                        pruner=pruner, sampler=sampler, load_if_exists=True)
        store_pruner(study, pruner_config)
        IN_PROCESS[study.study_name] = (study, self.storage)
        return study

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None, "setup() first"
        space = parse_search_space(self.params, arguments)
        study = self.create_study()
        slots = slots_for(self.launcher, self.n_jobs)
        log.info("study %r (%s): %d trials so far; %d more, %d at once%s; search space: %s", study.study_name,
                 self.storage_url or "in memory", len(study.trials), self.n_trials, slots.count,
                 " in rounds (barrier)" if self.barrier else "",
                 ", ".join(f"{k}: {d}" for k, d in space.distributions.items()))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        save_multirun(self.config, sweep_dir)
        search = Search(slots, self.timeout, self.n_trials, earlier=launched_in(study, sweep_dir))
        self.active = (study, search)
        confirmation = None
        try:
            with self.beating(study), stop_on_sigterm():
                self.run_search(study, space, search)
                if self.confirm_k:
                    confirmation = self.confirm(study, space, search, sweep_dir)
        except BaseException as err:  # Ctrl-C, SIGTERM or a bug here: the jobs do not outlive the sweeper
            self.stop_active()
            if isinstance(err, SweeperStopped):
                log.warning("stopped by SIGTERM: its running trials were stopped and enqueued again; run the same "
                            "command to resume them")
                raise SystemExit(128 + signal.SIGTERM) from None
            raise
        finally:
            IN_PROCESS.pop(study.study_name, None)
            IN_PROCESS.pop(confirm_name(study), None)
            write_results(study, sweep_dir / "optimization_results.yaml", search.record(
                on_timeout=self.on_timeout, barrier=self.barrier, confirmation=confirmation))
        refuse_no_result(search.launched, search.failed, sweep_dir, search.first_error)
        return [search.returns]

    def beating(self, study: Any) -> Any:
        if self.heartbeat is None:
            return contextlib.nullcontext()
        return Heartbeat(study, self.storage, self.heartbeat[0],
                         lambda: [r.trial_id for r in list(self.active[1].running.values())])  # one C call: atomic

    def confirm(self, study: Any, space: SearchSpace, search: Search, sweep_dir: Path) -> dict[str, Any] | None:
        """Retrain the top-k configurations over the confirmation seeds; rank, compare, write (sweeps/confirm.py)."""
        tops = top_trials(study, self.confirm_k)
        if len(tops) < 2 or search.past_deadline():
            log.warning("confirmation skipped: %s", "the time budget has passed" if search.past_deadline() else
                        f"{len(tops)} complete trial(s), 2 needed for a winner and a runner-up")
            return None
        confirm_study = self.open_study(confirm_name(study), None, optuna.samplers.RandomSampler())
        runs = enqueue(confirm_study, tops, self.confirm_seeds)
        log.info("confirmation: trials %s over seeds %s (%d runs)", [t.number for t in tops], self.confirm_seeds, runs)
        confirming = Search(search.slots, None, runs, prefix="confirm/")
        confirming.deadline, confirming.stop_at = search.deadline, search.stop_at  # one budget for the whole search
        self.active = (confirm_study, confirming)
        with self.beating(confirm_study):
            self.run_search(confirm_study, space, confirming)
        self.active = (study, search)
        maximize = study.direction.name == "MAXIMIZE"
        table = confirmation_table(confirm_study, tops, self.confirm_seeds, maximize)
        if table["seeds"].iloc[:2].min() == 0:
            log.warning("confirmation: the best configurations have no finished runs; nothing written")
            return None
        return write_confirmation(sweep_dir, table, paired_figures(table, self.confirm_seeds))

    def stop_active(self) -> None:
        study, search = self.active
        search.slots.stop([run.handle for run in search.running.values()])
        self.abandon(study, search)

    def abandon(self, study: Any, search: Search) -> None:
        """The sweeper is stopping with trials running: each is FAIL and enqueued again, so that rerunning the
        command resumes it from its last.ckpt."""
        for run in list(search.running.values()):
            try:
                run.trial.set_user_attr("error", "stopped with its sweeper (SIGTERM, Ctrl-C or a crash)")
                study.tell(run.trial, state=TrialState.FAIL)
                self.retry_died(study, run, "was stopped with its sweeper")
            except Exception as err:  # the storage may be what failed
                log.warning("trial %d stays RUNNING (%s); a later sweeper's heartbeat check fails it",
                            run.trial.number, err)

    def retry_died(self, study: Any, run: Running, why: str) -> None:
        retry(study, self.storage.get_trial(run.trial_id), self.max_retries, why)

    def run_search(self, study: Any, space: SearchSpace, search: Search) -> None:
        """Keep every slot busy: start trials while a slot is free (with ``barrier``, fill every slot only once
        the whole round has ended), then wait for any one to end and tell the study."""
        while True:
            if not self.barrier or not search.running:
                while len(search.running) < search.slots.count and self.may_start(study, search):
                    self.start_trial(study, space, search)
            if not search.running:
                return
            for slot, run, ret in search.wait():
                outcome = job_outcome(ret, len(self.directions))
                search.exhausted |= tell(study, run.trial, ret, outcome)
                search.ended(slot, run, ret, outcome)
                if outcome.died:
                    self.retry_died(study, run, f"died without a result ({outcome.reason})")
                if self.keep_checkpoints is not None:
                    keep_best_checkpoints(study, self.keep_checkpoints)
                if search.launched and search.failed / search.launched > self.max_failure_rate:
                    raise SearchFailed(f"{search.failed} of {search.launched} trials failed, more than "
                                       f"max_failure_rate={self.max_failure_rate}; the sweep stops (see their "
                                       f"failed.json in {self.config.hydra.sweep.dir})")

    def may_start(self, study: Any, search: Search) -> bool:
        if search.exhausted:
            if search.ended_by != "exhausted":
                log.info("the sampler has proposed every point of its search space; the search ends")
            search.ended_by = "exhausted"
            return False
        if search.earlier + search.launched >= search.budget and not pending_retries(study):
            return False
        if search.past_deadline():  # no trial starts after the budget
            if search.ended_by != "timeout":
                log.info("the time budget (hydra.sweeper.timeout=%gs) ended the search after %d of %d trials%s",
                         self.timeout, search.launched, self.n_trials,
                         "; running trials stop at their next epoch end" if self.on_timeout == "stop" else "")
            search.ended_by = "timeout"
            return False
        return True

    def start_trial(self, study: Any, space: SearchSpace, search: Search) -> None:
        trial = self.ask(study)
        storage_id = trial_id(self.storage, study.study_name, trial.number)
        # a copy: a journal storage hands out its own FrozenTrial, which trial.set_user_attr then edits in place
        # (the job_dir set below would hide the dead trial's directory that a retry resumes)
        frozen = copy.deepcopy(self.storage.get_trial(storage_id))
        is_retry = frozen.user_attrs.get(RETRY_OF) is not None
        job = self.trial_overrides(study, trial, space, search.stop_at if self.on_timeout == "stop" else None,
                                   search.prefix)
        if frozen.user_attrs.get(SEED) is not None:  # a confirmation run
            job.append(f"seed={frozen.user_attrs[SEED]}")
        job = continue_in(job, resume_dir(frozen), trial)
        search.retried += is_retry
        search.launched += not is_retry
        try:
            self.validate([job])
        except Exception as err:  # a sampled value the config or train's checks reject: only this trial fails
            search.failed += not is_retry
            search.first_error = search.first_error or f"refused before launch: {err}"
            trial.set_user_attr("error", f"refused before launch: {err}"[:1000])
            study.tell(trial, state=TrialState.FAIL)
            log.error("trial %d: refused before launch, the search goes on: %s", trial.number, err)
            return
        slot = min(set(range(search.slots.count)) - set(search.running))
        if self.heartbeat is not None:  # a trial with no beat is never found stale
            self.storage.record_heartbeat(storage_id)
        started = time.monotonic()
        search.running[slot] = Running(trial, None, started, storage_id, is_retry)
        search.running[slot].handle = search.slots.start(slot, job, self.job_idx)
        self.job_idx += 1

    def ask(self, study: Any) -> Any:
        """A new trial. Parameters are sampled later (``SearchSpace.suggest``), so the first trial can still swap
        in the sampler seeded from this process's first trial number, unique in the study."""
        trial = study.ask()
        if not self.seeded:
            study.sampler = make_sampler(self.sampler_config, trial.number)
            running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            # ask() ran this hook on the placeholder sampler (GridSampler needs it)
            study.sampler.before_trial(study, running[trial.number])
            self.seeded = True
        return trial

    def trial_overrides(self, study: Any, trial: Any, space: SearchSpace, stop_at: float | None,
                        prefix: str = "") -> list[str]:
        params = space.suggest(trial)
        trial.set_user_attr("overrides", params)
        subdir = f"{prefix}{trial.number}"  # never two jobs in one directory, whichever process
        trial.set_user_attr(JOB_DIR, str((Path(self.config.hydra.sweep.dir) / subdir).resolve()))
        return [*params, trial_override(trial.number, study.study_name, self.storage_url, stop_at),
                f"hydra.sweep.subdir={subdir}"]


def check_keep(keep: Any, n_objectives: int) -> int | None:
    if keep is None:
        return None
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise GenreLabError(f"hydra.sweeper.keep_checkpoints={keep!r} must be null (keep all) or a whole number ≥ 1")
    if n_objectives > 1:
        raise GenreLabError("hydra.sweeper.keep_checkpoints ranks trials by one value; a multi-objective study has "
                         f"{n_objectives}: set it to null")
    return keep


def save_multirun(config: DictConfig, sweep_dir: Path) -> None:
    """``multirun.yaml``: the first search's; a search continued in the same directory adds its own beside it."""
    path = sweep_dir / "multirun.yaml"
    n = 1
    while path.exists():
        path, n = sweep_dir / f"multirun.{n}.yaml", n + 1
    OmegaConf.save(config, path)


def launched_in(study: Any, sweep_dir: Path) -> int:
    """New trials (not retries) that earlier sweepers of this search started in ``sweep_dir``: a search
    continued in its own directory runs until it holds ``n_trials``; in a new directory, ``n_trials`` more."""
    inside = str(sweep_dir.resolve())
    return sum(str(Path(t.user_attrs.get(JOB_DIR, "/")).parent) == inside and t.user_attrs.get(RETRY_OF) is None
               for t in study.get_trials(deepcopy=False))
