"""The sweeper's slots without Hydra jobs: a fake launcher whose jobs take a set time shows that a freed slot
takes the next trial at once (and, with barrier=true, that it does not), that each slot keeps its share, and
what optimization_results.yaml records per slot."""

import time

import pytest
import yaml
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna")

from hydra.core.utils import JobReturn, JobStatus  # noqa: E402

from genre_lab.framework.compat import JOB_VALUE_FIELD  # noqa: E402
from genre_lab.sweeps.optuna_sweeper import OptunaSweeper  # noqa: E402
from genre_lab.sweeps.slots import InlineSlots, LauncherSlots, ThreadSlots, slots_for  # noqa: E402


class TimedLauncher:
    """Starts a job in a share; the job 'runs' for ``seconds=`` of its overrides and returns 0.5."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, float]] = []  # (event, job, time)
        self.shares_of: dict[str, str] = {}

    def plan(self, n: int) -> list[str]:
        return [f"gpu{i}" for i in range(n)]

    def start(self, share: str, overrides: list[str], idx: int) -> dict:
        seconds = float(next(o for o in overrides if o.startswith("seconds=")).split("=")[1])
        name = next(o for o in overrides if o.startswith("hydra.sweep.subdir=")).split("=")[1]
        self.log.append(("start", name, time.monotonic()))
        self.shares_of[name] = share
        return {"name": name, "ends": time.monotonic() + seconds, "overrides": overrides}

    def finished(self, job: dict, overrides: list[str]) -> tuple[bool, JobReturn | None]:
        if time.monotonic() < job["ends"]:
            return False, None
        self.log.append(("end", job["name"], time.monotonic()))
        return True, JobReturn(overrides=overrides, status=JobStatus.COMPLETED, **{JOB_VALUE_FIELD: 0.5})

    def cancel(self, job: dict) -> None:
        self.log.append(("cancel", job["name"], time.monotonic()))


def run_search(tmp_path, durations: list[float], barrier: bool, n_jobs: int = 2) -> tuple[TimedLauncher, dict]:
    """Trials 0, 1, … take ``durations`` seconds (enqueued in that order)."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="slots", direction="maximize")
    for seconds in durations:
        study.enqueue_trial({"seconds": seconds})
    sweeper = OptunaSweeper(sampler={"_target_": "optuna.samplers.RandomSampler", "seed": 0}, storage=storage,
                            study_name="slots", n_trials=len(durations), n_jobs=n_jobs, barrier=barrier,
                            params={"seconds": f"choice({','.join(map(str, sorted(set(durations))))})"})
    launcher = TimedLauncher()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    sweeper.setup(config, launcher, validate=lambda jobs: None)
    sweeper.sweep([])
    return launcher, yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())


def when(launcher: TimedLauncher, event: str, name: str) -> float:
    return next(t for e, n, t in launcher.log if e == event and n == name)


# one slow trial, then six fast ones: 2.7 s of work on 2 slots
DURATIONS = [1.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr("genre_lab.sweeps.progress.POLL_S", 0.01)


def test_a_freed_slot_starts_the_next_trial_before_the_slowest_running_one_ends(tmp_path):
    launcher, results = run_search(tmp_path, DURATIONS, barrier=False)
    # trial 1 ends after 0.2 s; trials 2 to 6 run in its slot, one after another, while trial 0 still runs
    for n in "23456":
        assert when(launcher, "start", n) < when(launcher, "end", "0")
    assert {launcher.shares_of[n] for n in "123456"} == {"gpu1"} and launcher.shares_of["0"] == "gpu0"
    assert results["states"] == {"COMPLETE": 7} and results["trials_launched"] == 7
    assert [s["trials"] for s in results["slots"]] == [1, 6] and results["barrier"] is False
    assert results["busy_share"] > 0.8  # 2.7 s of work in ~1.5 s × 2 slots
    for slot in results["slots"]:
        assert slot["busy_s"] + slot["idle_s"] == pytest.approx(results["wall_s"], abs=0.05)


def test_with_the_barrier_a_round_waits_for_its_slowest_trial(tmp_path):
    launcher, results = run_search(tmp_path, DURATIONS, barrier=True)
    assert when(launcher, "start", "1") < when(launcher, "end", "0")  # a round fills every slot
    assert when(launcher, "start", "2") >= when(launcher, "end", "0")  # and waits for its slowest trial
    assert when(launcher, "start", "3") < when(launcher, "end", "2")
    assert [s["trials"] for s in results["slots"]] == [4, 3]
    assert results["busy_share"] < 0.75 and results["barrier"] is True  # ~2.1 s of wall-clock
    assert results["slots"][1]["idle_s"] > 1.2  # trial 1's slot waited for trial 0 in the first round


def test_slots_are_chosen_by_launcher():
    class BasicLauncher:
        pass

    class AnyLauncher:
        def launch(self, overrides, initial_job_idx):
            return []

    assert isinstance(slots_for(BasicLauncher(), 4), InlineSlots)
    assert isinstance(slots_for(TimedLauncher(), 2), LauncherSlots)
    assert isinstance(threads := slots_for(AnyLauncher(), 3), ThreadSlots) and threads.count == 3


def test_thread_slots_run_jobs_at_once_and_a_launcher_error_fails_only_its_job():
    class SleepyLauncher:
        def launch(self, jobs, initial_job_idx):
            if jobs[0] == ["boom"]:
                raise RuntimeError("cluster said no")
            time.sleep(0.3)
            return [JobReturn(overrides=jobs[0], status=JobStatus.COMPLETED, **{JOB_VALUE_FIELD: initial_job_idx})]

    slots = ThreadSlots(SleepyLauncher(), 2)
    started = time.monotonic()
    a, b = slots.start(0, ["a"], 0), slots.start(1, ["b"], 1)
    boom_slots = ThreadSlots(SleepyLauncher(), 1)
    boom = boom_slots.start(0, ["boom"], 2)
    assert slots.result(a) == (False, None)
    while not (slots.result(a)[0] and slots.result(b)[0]):
        time.sleep(0.02)
    assert time.monotonic() - started < 0.55  # both slept 0.3 s at once
    assert slots.result(b)[1].overrides == ["b"]
    while not boom.done():
        time.sleep(0.02)
    assert boom_slots.result(boom) == (True, None)
