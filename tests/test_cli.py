"""The console script and `python -m genre_lab.train`, in a subprocess as users run them."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, genre_lab_here

FAST = ["model=tiny", "data=sample", "debug=fast_dev_run", "~callbacks.progress_bar"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def genre_lab() -> str:
    script = Path(sys.executable).parent / "genre-lab"
    if not script.exists():
        pytest.fail(f"console script not installed next to {sys.executable}; run `pip install -e .`")
    return str(script)


def test_console_script_runs_one_step(tmp_path):
    out = tmp_path / "run"
    result = run([genre_lab(), "train", *FAST, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / ".hydra" / "config.yaml").is_file()
    assert (out / "metrics.json").is_file() and (out / "per_class.csv").is_file()
    assert "val/f1_micro" in result.stdout
    # fast_dev_run saves no checkpoint: the figures are the unsaved final weights', and say so
    assert "validation (final weights, not saved)" in result.stdout and "best checkpoint" not in result.stdout
    assert not (out / "checkpoints").exists()


@pytest.mark.process
def test_python_module_entry_point(tmp_path):
    out = tmp_path / "run"
    result = run([sys.executable, "-m", "genre_lab.train", *FAST, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "metrics.json").is_file()


@pytest.mark.process
def test_user_error_is_one_line_and_exit_code_2(tmp_path):
    missing = tmp_path / "nowhere.csv"
    result = run([genre_lab(), "train", "model=tiny", f"data.train_csv={missing}",
                  f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    assert f"genre-lab: error: data file not found: {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_and_help(tmp_path):
    result = run([genre_lab(), "frobnicate"], cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
    result = run([genre_lab(), "--help"], cwd=tmp_path)
    assert result.returncode == 0 and "train" in result.stdout


def test_train_config_prints_without_running(tmp_path):
    result = genre_lab_here("train", "experiment=seed_notebook", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "batch_size: 8" in result.stdout and str(REPO) not in result.stderr
