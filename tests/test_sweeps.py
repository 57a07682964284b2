"""Multirun, sweep summaries, failing jobs, Optuna — through the real CLI (more Optuna in tests/sweeps/)."""

import json

import pandas as pd
import pytest
import torch

from tests.conftest import TINY_FAST, genre_lab_here


def test_grid_multirun_gives_one_directory_per_job_and_a_summary(grid_sweep):
    jobs = sorted(p for p in grid_sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["best_checkpoint"].startswith(str(job))  # never a shared checkpoint
        seen.add((metrics["epochs"], torch.load(job / "checkpoints" / "best.ckpt", weights_only=True)
                  ["hyper_parameters"]["lr"]))
        assert (job / "csv" / "metrics.csv").is_file()
    assert seen == {(1, 1e-3), (1, 3e-3), (2, 1e-3), (2, 3e-3)}

    summary = pd.read_csv(grid_sweep / "sweep_summary.csv")
    assert len(summary) == 4 and (summary.status == "ok").all()
    assert summary["val/f1_micro"].is_monotonic_decreasing  # best first
    # only what varies between the jobs
    assert set(summary.overrides) == {f"trainer.max_epochs={e} model.lr={lr}" for e in (1, 2)
                                      for lr in ("0.001", "0.003")}
    markdown = (grid_sweep / "sweep_summary.md").read_text()
    assert markdown.count("\n| ") == 4 and "val/f1_micro" in markdown
    assert "best first by val/f1_micro" in (grid_sweep / "stdout.txt").read_text()


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, four_csv):
    result = genre_lab_here("train", "-m", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                            "data.sample.frac=0.5,7", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    failed = json.loads((tmp_path / "sweep" / "1" / "failed.json").read_text())
    assert "sample.frac=7" in failed["error"].replace("data.", "")
    assert (tmp_path / "sweep" / "0" / "metrics.json").is_file()
    summary = pd.read_csv(tmp_path / "sweep" / "sweep_summary.csv")
    assert summary.status.tolist() == ["ok", "failed"]


GRID_SEARCH = """# @package _global_
# test-only: our sweeper with the brute-force sampler over 3 max_length values, one invalid: each is tried
# once, so exactly one of the 3 trials fails
defaults:
  - override /hydra/sweeper: genre_lab_optuna
  - override /hydra/sweeper/sampler: brute_force
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: genre_lab
    direction: maximize
    n_trials: 3
    max_failure_rate: 1.0
    sampler:
      seed: 2
    params:
      data.max_length: choice(32, 4, 64)
"""


def test_optuna_sweep_in_memory_survives_a_failing_trial(tmp_path, four_csv):
    """In-memory study (with sqlite storage: tests/sweeps/test_optuna_sweeper.py)."""
    pytest.importorskip("optuna")
    (tmp_path / "conf" / "hparams_search").mkdir(parents=True)
    (tmp_path / "conf" / "hparams_search" / "optuna_grid.yaml").write_text(GRID_SEARCH)
    result = genre_lab_here(
        "train", "hparams_search=optuna_grid", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", *TINY_FAST,
        f"data.train_csv={four_csv}", "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = pd.read_csv(tmp_path / "sweep" / "sweep_summary.csv")
    assert sorted(summary.status) == ["failed", "ok", "ok"]
    failed = summary[summary.status == "failed"]
    assert failed.overrides.item() == "data.max_length=4" and "max_length=4 is too short" in failed.error.item()
    results = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "best_value" in results and "FAIL: 1" in results


def test_the_shipped_optuna_search_runs(tmp_path, four_csv):
    pytest.importorskip("optuna")
    # trainer.max_epochs on the command line wins over the search's range: 1 epoch per trial
    result = genre_lab_here("train", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY_FAST,
                            "trainer.max_epochs=1", f"data.train_csv={four_csv}",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = pd.read_csv(tmp_path / "sweep" / "sweep_summary.csv")
    assert len(summary) == 2 and (summary.status == "ok").all() and sorted(summary.trial) == [0, 1]
    assert all("model.lr=" in o and "trial=" not in o for o in summary.overrides)  # continuous: always differs
    assert (summary.epochs == 1).all()
    assert "best_params" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()
