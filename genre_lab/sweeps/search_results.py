"""What the study is told when a trial ends, and what a search writes and exits with at its end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from omegaconf import OmegaConf
from optuna.trial import TrialState

from genre_lab.errors import GenreLabError
from genre_lab.io import atomic_write_text
from genre_lab.sweeps.outcome import Outcome

log = logging.getLogger(__name__)


class SearchFailed(GenreLabError):
    """A search that ended without a result (every trial failed, or more than max_failure_rate): one line, exit 1."""

    exit_code = 1


def refuse_no_result(launched: int, failed: int, sweep_dir: Path, first_error: str) -> None:
    """Exit non-zero when every trial of this search failed (a pruned trial has figures: a search whose pruner
    stopped every trial still ended as it should)."""
    if launched and failed == launched:
        raise SearchFailed(f"every one of the {launched} trials of this search failed, the first with: "
                           f"{first_error.splitlines()[0] if first_error else '(no message)'} — each trial's error is "
                           f"in {sweep_dir / 'optimization_results.yaml'} (failed:) and its directory's failed.json")


def tell(study: Any, trial: Any, ret: JobReturn | None, outcome: Outcome) -> bool:
    """Tell the study ``outcome``; True when the sampler says its search space is exhausted."""
    if ret is not None and ret.hydra_cfg is not None:
        trial.set_user_attr("output_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
    if outcome.reason:
        trial.set_user_attr("error", outcome.reason[:1000])
    if outcome.stopped_by:
        trial.set_user_attr("stopped_by", outcome.stopped_by)
    exhausted = False
    try:
        study.tell(trial, outcome.values if outcome.state == TrialState.COMPLETE else None, state=outcome.state)
    except RuntimeError as err:
        # Grid and brute-force samplers call study.stop() once exhausted, which only works inside
        # study.optimize(); the trial's state is stored before that (optuna's _tell: finally).
        if "Study.stop" not in str(err):
            raise
        exhausted = True
    why = outcome.reason or ("stopped by the time budget" if outcome.stopped_by == "timeout" else "")
    log.info("trial %d: %s%s", trial.number, outcome.state.name,
             f" {outcome.values}" if outcome.values else f" ({why})" if why else "")
    return exhausted


def write_results(study: Any, path: Path, search: dict[str, Any] | None = None) -> None:
    """``optimization_results.yaml``: the study's best trial(s), its trial counts by state, and what ended this
    search (``ended_by``: n_trials, timeout or exhausted)."""
    trials = study.get_trials(deepcopy=False)
    result: dict[str, Any] = {
        "name": "optuna", "study_name": study.study_name,
        "states": {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))}, **(search or {}),
    }
    retries = [{"trial": t.number, "retry_of": t.user_attrs["retry_of"], "state": t.state.name,
                "dir": t.user_attrs.get("job_dir")} for t in trials if t.user_attrs.get("retry_of") is not None]
    if retries:
        result["retries"] = retries  # the lineage: each retry trained on in the directory of the trial it retried
    retried_as = {r["retry_of"]: r["trial"] for r in retries}
    failed = [{"trial": t.number, "error": t.user_attrs.get("error") or (
        f"its process died or went silent (found stale); retried as trial {retried_as[t.number]}"
        if t.number in retried_as else "no message")} for t in trials if t.state == TrialState.FAIL]
    if failed:
        result["failed"] = failed  # with why: a trial refused before launch has no directory to look in
    running = [t.number for t in trials if t.state == TrialState.RUNNING]
    if running:
        result["running"] = running  # another sweeper's, or one that died and is not yet found stale
    stopped = [t.number for t in trials if t.user_attrs.get("stopped_by") == "timeout"]
    if stopped:
        result["stopped_by_budget"] = stopped  # on_timeout=stop: PRUNED at the budget, not by the pruner
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        best = study.best_trial
        result.update(best_trial=best.number, best_params=best.params, best_value=best.value)
    elif complete:
        result["best_trials"] = [{"number": t.number, "params": t.params, "values": t.values}
                                 for t in study.best_trials]
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(result)))
    log.info("%s: %s", path, {k: v for k, v in result.items() if k != "name"})
