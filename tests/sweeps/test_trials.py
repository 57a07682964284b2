"""Job outcomes as trial states, sampler seeds, shared storages, and the pruning callback — without training."""

import math
import threading
from types import SimpleNamespace

import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus

from genre_lab.framework.loggers import log_summary
from genre_lab.sweeps.optuna_sweeper import derive_seed
from genre_lab.sweeps.outcome import job_outcome
from genre_lab.sweeps.pruning import TrialPruning
from genre_lab.sweeps.storage import open_storage
from genre_lab.sweeps.trial_link import IN_PROCESS, reach_trial, store_pruner

optuna = pytest.importorskip("optuna")


def job(status: JobStatus, value) -> JobReturn:
    ret = JobReturn(status=status)
    ret.return_value = value
    return ret


@pytest.mark.parametrize(("ret", "state"), [
    (job(JobStatus.COMPLETED, 0.5), "COMPLETE"),
    (job(JobStatus.COMPLETED, None), "FAIL"),  # train() in a multirun: the job failed, failed.json says why
    (job(JobStatus.COMPLETED, math.nan), "FAIL"),
    (job(JobStatus.FAILED, RuntimeError("boom")), "FAIL"),  # raised (show_traceback=true, or a bug)
    (job(JobStatus.FAILED, optuna.TrialPruned("after epoch 1")), "PRUNED"),  # never a failure
    (None, "FAIL"),  # the launcher lost the job
])
def test_job_outcomes(ret, state):
    assert job_outcome(ret).state.name == state


def test_seeds_differ_per_first_trial_and_repeat_per_seed():
    assert derive_seed(42, 0) == derive_seed(42, 0)
    assert len({derive_seed(42, n) for n in range(100)} | {derive_seed(43, 0)}) == 101


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_threads_asking_one_storage_get_distinct_trial_numbers(tmp_path, scheme):
    url = f"sqlite:///{tmp_path / 's.db'}" if scheme == "sqlite" else f"journal://{tmp_path / 's.log'}"
    optuna.create_study(study_name="s", storage=open_storage(url))
    numbers: list[int] = []

    def ask() -> None:
        study = optuna.load_study(study_name="s", storage=open_storage(url))
        numbers.extend(study.ask().number for _ in range(5))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(15))


def trainer(epoch: int, value: float) -> SimpleNamespace:
    return SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn="fit"), is_global_zero=True, world_size=1,
                           current_epoch=epoch, callback_metrics={"val/f1_micro": torch.tensor(value)},
                           should_stop=False)


def test_the_callback_reports_each_epoch_and_stops_the_trainer_when_pruned(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(study_name="p", storage=open_storage(url), direction="maximize")
    store_pruner(study, {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5, "n_warmup_steps": 1})
    number = study.ask().number
    callback = TrialPruning({"number": number, "study_name": "p", "storage": url}, "val/f1_micro")
    callback.on_fit_start(trainer(0, 0), None)  # through the storage, as a job on another node does
    for epoch, value in enumerate([0.3, 0.4, 0.2]):
        fake = trainer(epoch, value)
        callback.on_validation_end(fake, None)
        if fake.should_stop:
            break
    assert (callback.pruned_at, callback.best) == (1, pytest.approx(0.4))
    assert study.trials[0].intermediate_values == {0: pytest.approx(0.3), 1: pytest.approx(0.4)}


def test_an_in_memory_study_is_reached_in_process_only(caplog):
    study = optuna.create_study(study_name="mem")
    number = study.ask().number
    node = {"number": number, "study_name": "mem", "storage": None}
    assert reach_trial(node) is None and "not pruned" in caplog.text  # another process: no way to it
    IN_PROCESS["mem"] = (study, study._storage)
    try:
        assert reach_trial(node).number == number
    finally:
        IN_PROCESS.pop("mem")


def test_wandb_summary_gets_the_trial_state():
    class WandbLogger:  # stands in for Lightning's: matched by name, as loggers.py does
        experiment = SimpleNamespace(summary={})

    logger = WandbLogger()
    log_summary([logger, SimpleNamespace()], {"trial/number": 3, "trial/state": "pruned"})
    assert logger.experiment.summary == {"trial/number": 3, "trial/state": "pruned"}


def test_a_trial_is_never_pruned_after_its_last_epoch(tmp_path):
    """Pruning then saves nothing: the trial spent its budget and is told COMPLETE, with its value reported."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=open_storage(url), direction="maximize")
    store_pruner(study, {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5})
    number = study.ask().number
    callback = TrialPruning({"number": number, "study_name": "q", "storage": url}, "val/f1_micro")
    callback.on_fit_start(trainer(0, 0), None)
    for epoch, value in enumerate([0.6, 0.2]):  # below the threshold only in the last of 2 epochs
        fake = SimpleNamespace(**{**vars(trainer(epoch, value)), "max_epochs": 2})
        callback.on_validation_end(fake, None)
        assert not fake.should_stop
    assert not callback.pruned and study.trials[0].intermediate_values == {0: pytest.approx(0.6), 1: pytest.approx(0.2)}
