"""The Hydra trap: configs must be found from a plain wheel install, not only from the checkout."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    """Build the wheel and unpack-install it (no deps: they are already installed) into a folder."""
    root = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(root)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(root.glob("genre_lab-*.whl"))
    site = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return site


def test_wheel_ships_configs_and_sample(wheel_site):
    assert (wheel_site / "genre_lab" / "conf" / "train.yaml").is_file()
    assert (wheel_site / "genre_lab" / "conf" / "experiment" / "quickstart.yaml").is_file()
    assert (wheel_site / "genre_lab" / "resources" / "sample_movies.csv").is_file()
    # the Optuna sweeper plugin, inside Hydra's namespace package (an __init__.py there would hide other plugins)
    assert (wheel_site / "hydra_plugins" / "genre_lab_sweeper" / "genre_lab_optuna.py").is_file()
    assert not (wheel_site / "hydra_plugins" / "__init__.py").exists()


@pytest.mark.process
def test_wheel_install_finds_conf_from_elsewhere(wheel_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(wheel_site)}  # ahead of the editable checkout
    probe = subprocess.run(
        [sys.executable, "-c", "import genre_lab.config_dir as c; print(c.config_dir())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == wheel_site / "genre_lab" / "conf"
    result = subprocess.run(
        [sys.executable, "-m", "genre_lab", "train", "experiment=quickstart", "--cfg", "job"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backbone: minilm" in result.stdout
    assert str(wheel_site / "genre_lab" / "resources" / "sample_movies.csv") in subprocess.run(
        [sys.executable, "-m", "genre_lab", "train", "experiment=quickstart", "paths.output_dir=x",
         "--cfg", "job", "--resolve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    ).stdout
