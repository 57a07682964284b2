"""Heartbeat settings and the retry of a trial that died: same parameters, linked, at most max_retries times."""

import time
import warnings

import pytest

optuna = pytest.importorskip("optuna")

from genre_lab.errors import GenreLabError  # noqa: E402
from genre_lab.sweeps.retries import check_heartbeat, pending_retries, resume_dir, retry  # noqa: E402

SQLITE = "sqlite:////tmp/study.db"


@pytest.mark.parametrize("interval,grace,url,expected", [
    (None, None, None, None), (None, None, "journal:///tmp/j.log", (60, 180)), (None, None, SQLITE, (60, 180)),
    (5, None, SQLITE, (5, 15)), (5, 6, SQLITE, (5, 6)), (None, 300, SQLITE, (60, 300))])
def test_heartbeat_settings(interval, grace, url, expected):
    assert check_heartbeat(interval, grace, url) == expected


@pytest.mark.parametrize("interval,grace,url,says", [
    (5, None, None, "dies with its sweeper"), (0, None, "journal:///tmp/j.log", "≥ 1"),
    (None, 10, None, "grace_period=10 needs a persistent storage"), (0, None, SQLITE, "≥ 1"),
    (True, None, SQLITE, "≥ 1"),
    (5, 5, SQLITE, "larger than heartbeat_interval=5")])
def test_bad_heartbeat_settings_are_refused(interval, grace, url, says):
    with pytest.raises(GenreLabError, match=says):
        check_heartbeat(interval, grace, url)


def test_a_journal_keeps_heartbeats_and_fails_only_trials_whose_beats_stopped(tmp_path, monkeypatch):
    from genre_lab.sweeps import storage as storage_module

    stale = []
    storage = storage_module.open_storage(f"journal://{tmp_path / 'j.log'}", (1, 3),
                                          lambda study, trial: stale.append(trial.number))
    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)  # as the sweeper
    study = optuna.create_study(storage=storage)
    beating, _silent, done = study.ask(), study.ask(), study.ask()
    for trial in (beating, done):
        storage.record_heartbeat(trial._trial_id)
    study.tell(done, 1.0)
    storage.record_heartbeat(done._trial_id)  # a trial that ended since it was listed: no error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        assert stale == []  # fresh beats; a trial with no beat yet is never stale
        now = time.time()
        monkeypatch.setattr(storage_module.time, "time", lambda: now + 10)
        optuna.storages.fail_stale_trials(study)
        optuna.storages.fail_stale_trials(optuna.load_study(  # a second sweeper on the journal: nothing twice
            study_name=study.study_name, storage=storage_module.open_storage(f"journal://{tmp_path / 'j.log'}",
                                                                             (1, 3), stale.append)))
    assert stale == [beating.number]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "RUNNING", "COMPLETE"]


def died(study, job_dir: str) -> optuna.trial.FrozenTrial:
    """A trial that sampled x, then died."""
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("job_dir", job_dir)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study.trials[trial.number]


def test_a_dead_trial_is_enqueued_with_its_parameters_and_lineage_at_most_max_retries_times(tmp_path):
    study = optuna.create_study()
    first = died(study, str(tmp_path / "0"))
    assert retry(study, first, max_retries=1, why="died") == 1 and pending_retries(study)
    again = study.ask()
    assert again.params == {} and study.trials[again.number].system_attrs["fixed_params"] == first.params
    assert again.user_attrs == {"retry_of": 0, "retries": 1, "job_dir": str(tmp_path / "0")}
    study.tell(again, state=optuna.trial.TrialState.FAIL)
    assert retry(study, study.trials[again.number], max_retries=1, why="died") is None  # its one retry was spent
    assert not pending_retries(study)


def test_a_retry_resumes_the_dead_trial_s_directory_only_when_it_holds_a_last_checkpoint(tmp_path):
    study = optuna.create_study()
    retry(study, died(study, str(tmp_path / "0")), max_retries=2, why="died")
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))[0]
    assert resume_dir(waiting) is None  # killed before its first epoch ended: starts afresh in its own directory
    (tmp_path / "0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resume_dir(waiting) == tmp_path / "0"
    assert resume_dir(study.trials[0]) is None  # not a retry
