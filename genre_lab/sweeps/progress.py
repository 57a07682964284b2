"""The state of one running search: its slots' trials, counts, time budget and the slots' busy time."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn
from optuna.trial import TrialState

from genre_lab.io import sigterm_raises
from genre_lab.sweeps.outcome import Outcome
from genre_lab.sweeps.slots import Slots

POLL_S = 0.2


@dataclass
class Running:
    trial: Any  # optuna.trial.Trial
    handle: Any  # what Slots.start returned
    started: float  # time.monotonic()
    trial_id: int  # the storage's id of the trial (heartbeats)
    retry: bool = False  # a retry of a trial that died (not counted in n_trials)


@dataclass
class SlotClock:
    """Busy seconds per slot since the search started; idle is the rest of the search's wall-clock."""

    count: int
    started: float = field(default_factory=time.monotonic)
    busy: list[float] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.busy, self.trials = [0.0] * self.count, [0] * self.count

    def add(self, slot: int, seconds: float) -> None:
        self.busy[slot] += seconds
        self.trials[slot] += 1

    def report(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        slots = [{"slot": s, "trials": self.trials[s], "busy_s": round(self.busy[s], 2),
                  "idle_s": round(max(0.0, wall - self.busy[s]), 2)} for s in range(self.count)]
        share = sum(self.busy) / (wall * self.count) if wall > 0 else 0.0
        return {"wall_s": round(wall, 2), "busy_share": round(min(1.0, share), 4), "slots": slots}


class Search:
    """What the sweeper knows while its trials run (one ``sweep`` call)."""

    def __init__(self, slots: Slots, timeout: float | None, budget: int, earlier: int = 0, prefix: str = "") -> None:
        self.slots, self.timeout, self.earlier = slots, timeout, earlier
        self.budget = budget  # new trials to run (n_trials), counting the ``earlier`` ones of this sweep directory
        self.prefix = prefix  # of the job directories' names: "" or "confirm/"
        self.clock = SlotClock(slots.count)
        self.running: dict[int, Running] = {}  # slot -> its trial
        self.returns: list[JobReturn | None] = []
        self.launched = self.failed = 0  # new trials (n_trials counts these; a retry is not one)
        self.retried = 0
        self.first_error = ""  # of the first trial that failed, for the message when every one did
        self.ended_by = "n_trials"
        self.exhausted = False  # a grid / brute-force sampler has proposed every point
        # the budget's end: monotonic for the sweeper, wall-clock for jobs (on_timeout=stop), maybe on other nodes
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.stop_at = None if timeout is None else time.time() + timeout

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def wait(self) -> list[tuple[int, Running, JobReturn | None]]:
        """Block until at least one running trial has ended; those that have, with their JobReturn."""
        while True:
            ended = []
            for slot, run in list(self.running.items()):
                done, ret = self.slots.result(run.handle)
                if done:
                    ended.append((slot, run, ret))
            if ended:
                return ended
            time.sleep(POLL_S)

    def ended(self, slot: int, run: Running, ret: JobReturn | None, outcome: Outcome) -> None:
        self.clock.add(slot, time.monotonic() - run.started)
        del self.running[slot]
        self.returns.append(ret)
        self.failed += outcome.state == TrialState.FAIL and not run.retry
        if outcome.state == TrialState.FAIL:
            self.first_error = self.first_error or outcome.reason

    def record(self, **settings: Any) -> dict[str, Any]:
        """What ``optimization_results.yaml`` says about this search besides the study."""
        return {"ended_by": self.ended_by, "trials_launched": self.launched, "retries_launched": self.retried,
                "trials_of_earlier_sweepers_here": self.earlier,
                "timeout": self.timeout, **settings,
                **self.clock.report()}


class SweeperStopped(BaseException):
    """SIGTERM to the sweeper: its jobs are stopped and its running trials enqueued again."""


def stop_on_sigterm() -> contextlib.AbstractContextManager[None]:
    return sigterm_raises(lambda _: SweeperStopped("SIGTERM"))
