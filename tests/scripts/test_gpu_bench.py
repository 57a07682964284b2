"""scripts/gpu_bench.sh --smoke: the GPU benchmark's plumbing, run for a few CPU steps so it never rots."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.process
def test_gpu_bench_smoke_runs_and_reports(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BENCH_DIR": str(tmp_path)}
    result = subprocess.run(["bash", "scripts/gpu_bench.sh", "--smoke", "~callbacks.lr_monitor"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gpu_bench: fit" in result.stdout and "samples/s" in result.stdout
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert timing["epochs"] == 1 and timing["train_samples"] == 160 and timing["train_samples_per_s"] > 0
    assert len((tmp_path / "movies.csv").read_text().splitlines()) == 201  # header + 200 repeated rows
