"""What a finished job means for its trial: COMPLETE with a value, PRUNED, or FAIL (and why)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from optuna import TrialPruned
from optuna.trial import TrialState

from genre_lab.framework.compat import JobDied, job_value


class StoppedByBudget(TrialPruned):
    """A trial stopped at an epoch end because the search's time budget had passed (``on_timeout=stop``): its
    results are written as a pruned trial's, and the study records ``stopped_by: timeout``."""


@dataclass(frozen=True)
class Outcome:
    state: Any  # optuna.trial.TrialState
    values: list[float] | None = None
    reason: str = ""
    stopped_by: str | None = None  # a PRUNED trial: "timeout" when the search's time budget stopped it
    died: bool = False  # a FAIL whose process ended without a result (killed): retried from its last.ckpt


def job_outcome(ret: JobReturn | None, n_objectives: int = 1) -> Outcome:
    """COMPLETE when the job returned a finite number (one per objective); PRUNED when it raised
    ``optuna.TrialPruned``; FAIL otherwise (``train`` returns None for a failed job inside a multirun)."""

    if ret is None or ret.status == JobStatus.UNKNOWN:
        return Outcome(TrialState.FAIL, reason="the launcher returned no result for this job", died=True)
    value = job_value(ret)
    if ret.status == JobStatus.FAILED:
        if isinstance(value, JobDied):
            return Outcome(TrialState.FAIL, reason=str(value), died=True)
        if isinstance(value, TrialPruned):
            return Outcome(TrialState.PRUNED, stopped_by="timeout" if isinstance(value, StoppedByBudget) else None)
        return Outcome(TrialState.FAIL, reason=f"{type(value).__name__}: {value}")
    if value is None:
        return Outcome(TrialState.FAIL, reason="the job failed (see failed.json in its directory)")
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return Outcome(TrialState.FAIL, reason=f"the job returned {value!r}, not a number")
    if len(numbers) != n_objectives or not all(math.isfinite(v) for v in numbers):
        return Outcome(TrialState.FAIL, reason=f"the job returned {value!r}; {n_objectives} finite number(s) needed")
    return Outcome(TrialState.COMPLETE, numbers)
