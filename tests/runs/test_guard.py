"""Run and sweep directories: never reused by a new run or sweep, never written by two at once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genre_lab.errors import GenreLabError
from genre_lab.runs.guard import LOCK_NAME, lock_directory, refuse_earlier_sweep
from tests.conftest import REPO, TINY_FAST, genre_lab_cli, genre_lab_here


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("genre-lab: error: ")]


def test_a_multirun_into_a_finished_sweep_is_refused_and_changes_no_byte(grid_sweep, four_csv, tmp_path):
    before = tree_digest(grid_sweep)
    result = genre_lab_here("train", "-m", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                            "model.lr=5e-3,7e-3", f"hydra.sweep.dir={grid_sweep}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and f"hydra.sweep.dir={grid_sweep} already holds a sweep" in lines[0], result.stderr[-2000:]
    assert "multirun.yaml, 0, 1, 2, 3" in lines[0] and "resume=true" in lines[0]
    assert "Traceback" not in result.stderr
    assert tree_digest(grid_sweep) == before  # overrides.yaml, failed.json, sweep_summary: all untouched


def test_eval_sweeps_are_refused_too_without_a_resume_hint(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    with pytest.raises(GenreLabError, match=r"already holds a sweep \(0\); .* new hydra.sweep.dir$"):
        refuse_earlier_sweep(tmp_path, resume=None)
    refuse_earlier_sweep(tmp_path, resume=True)  # train's resume=true continues the jobs
    refuse_earlier_sweep(tmp_path / "new", resume=False)


def test_a_locked_directory_is_refused_and_free_again_once_released(tmp_path):
    first = lock_directory(tmp_path / "run", "hydra.run.dir")
    with pytest.raises(GenreLabError, match="is in use by another genre-lab run"):
        lock_directory(tmp_path / "run", "hydra.run.dir")
    first.release()
    lock_directory(tmp_path / "run", "hydra.run.dir").release()


@pytest.mark.process
def test_two_runs_into_one_directory_at_once_the_second_is_refused(tmp_path, four_csv):
    run, release = tmp_path / "run", tmp_path / "release"
    hold = ["+callbacks.hold._target_=tests.killer.HoldUntil", f"+callbacks.hold.release={release}"]
    first = subprocess.Popen([sys.executable, "-m", "genre_lab", "train", *TINY_FAST, f"data.train_csv={four_csv}",
                              "trainer.max_epochs=1", "model.lr=1e-3", f"hydra.run.dir={run}", *hold], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None and not (run / ".hydra" / "config.yaml").is_file():
            time.sleep(0.05)
        assert (run / LOCK_NAME).is_file() and first.poll() is None, first.stderr.read()[-3000:]

        second = genre_lab_cli("train", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                               "model.lr=5e-3", f"hydra.run.dir={run}", cwd=tmp_path)
        assert first.poll() is None  # still holding its directory
    finally:
        release.touch()
    assert second.returncode == 2, second.stderr[-3000:]
    lines = error_lines(second.stderr)
    assert len(lines) == 1 and f"hydra.run.dir={run} is in use by another genre-lab run" in lines[0]
    assert "Traceback" not in second.stderr

    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert "model.lr=1e-3" in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "best.ckpt").is_file()


# ---- no command writes into another run's directory (issue 23) ----

@pytest.fixture(scope="module")
def run_kinds(tmp_path_factory, trained_run, mixed_sweep) -> dict[str, Path]:
    """One finished directory of each kind a command leaves: training run, baseline, ensemble, eval, predict."""
    root = tmp_path_factory.mktemp("kinds")
    made = {
        "ensemble": ("ensemble", f"runs=[{mixed_sweep / '0'},{mixed_sweep / '1'}]"),
        "eval": ("eval", f"run_dir={trained_run}"),
        "predict": ("predict", f"run_dir={trained_run}", "text=a ghost haunts the old house"),
    }
    for kind, args in made.items():
        result = genre_lab_here(*args, f"hydra.run.dir={root / kind}", cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
    return {"train": trained_run, "baseline": mixed_sweep / "0", **{k: root / k for k in made}}


COMMANDS = {
    "train": lambda run, mixed, tmp: ["train", *TINY_FAST, "data=sample", "trainer.max_epochs=1"],
    "eval": lambda run, mixed, tmp: ["eval", f"run_dir={run}"],
    "predict": lambda run, mixed, tmp: ["predict", f"run_dir={run}", "text=a ghost haunts the old house"],
    "export": lambda run, mixed, tmp: ["export", f"run_dir={run}", f"out={tmp / 'exported'}"],
    "ensemble": lambda run, mixed, tmp: ["ensemble", f"runs=[{mixed / '0'},{mixed / '1'}]"],
    "bench": lambda run, mixed, tmp: ["bench"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["train", "baseline", "ensemble", "eval", "predict"])
def test_no_command_writes_into_another_runs_directory(command, kind, run_kinds, trained_run, mixed_sweep,
                                                       tmp_path):
    target = run_kinds[kind]
    before = tree_digest(target)
    args = COMMANDS[command](trained_run, mixed_sweep, tmp_path)
    result = genre_lab_here(*args, f"hydra.run.dir={target}", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-3000:])
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-2000:]
    assert f"{target} already holds an earlier run's results" in lines[0] or (
        command == "train" and f"{target} already holds a trained model" in lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert tree_digest(target) == before  # not one byte: no .hydra/, no log, no lock file
    assert not (tmp_path / "exported").exists()


def test_a_used_sweep_directory_of_a_search_gets_the_searchs_advice_not_resume(tmp_path):
    """resume=true would make every new Optuna trial fail for want of a last.ckpt: a search is told how it goes on."""
    from genre_lab.runs.guard import refuse_earlier_sweep

    (tmp_path / "multirun.yaml").write_text("{}")
    with pytest.raises(GenreLabError, match=r"already holds a sweep \(multirun.yaml\).*same hydra.sweeper.storage") \
            as refused:
        refuse_earlier_sweep(tmp_path, False, search=True)
    assert "resume=true" not in str(refused.value)
    with pytest.raises(GenreLabError, match=r"resume=true to continue its jobs' last.ckpt"):
        refuse_earlier_sweep(tmp_path, False)


def test_a_search_goes_on_in_its_own_sweep_directory_only_on_the_same_persistent_study(tmp_path):
    from omegaconf import OmegaConf

    from genre_lab.runs.guard import same_search

    def search(storage, study="genre_lab"):
        return OmegaConf.create({"hydra": {"sweeper": {"storage": storage, "study_name": study}}})

    assert not same_search(tmp_path, search("sqlite:///a.db"))  # nothing there yet
    OmegaConf.save(search("sqlite:///a.db"), tmp_path / "multirun.yaml")
    assert same_search(tmp_path, search("sqlite:///a.db"))
    refuse_earlier_sweep(tmp_path, False, search=True, continues=True)
    assert not same_search(tmp_path, search("sqlite:///b.db"))  # another study's files would mix with these
    assert not same_search(tmp_path, search("sqlite:///a.db", "other"))
    OmegaConf.save(search(None), tmp_path / "multirun.yaml")
    assert not same_search(tmp_path, search(None))  # in memory: the earlier study is gone


def test_a_stashed_first_record_is_put_back_by_the_resuming_job(tmp_path):
    from genre_lab.runs.guard import keep_started_record, stash_started_record, take_stashed_record

    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("trial: {number: 0}\n")
    stash_started_record(tmp_path)
    (hydra / "config.yaml").write_text("trial: {number: 5}\n")  # what Hydra writes for the retry job
    keep_started_record(tmp_path, take_stashed_record(tmp_path))
    assert (hydra / "config.yaml").read_text() == "trial: {number: 0}\n"
    assert (hydra / "resumes" / "1" / "config.yaml").read_text() == "trial: {number: 5}\n"
    assert not (hydra / "started").exists() and take_stashed_record(tmp_path) == {}
