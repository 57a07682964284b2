"""The GPU path, checked the first time a machine with CUDA runs `pytest -m gpu` (skipped elsewhere)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import QUIET, REPO, SHARED_DATA, genre_lab_cli

pytestmark = pytest.mark.gpu


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


needs_gpu = pytest.mark.skipif(cuda_devices() < 1, reason="no CUDA device")


@needs_gpu
def test_the_tiny_model_trains_one_epoch_in_bf16_on_the_gpu(tmp_path, four_csv):
    run = tmp_path / "run"
    result = genre_lab_cli("train", "model=tiny", "trainer=gpu", "trainer.max_epochs=1", f"data.train_csv={four_csv}",
                           f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    timing = json.loads((run / "timing.json").read_text())
    assert timing["precision"] == "bf16-mixed" and timing["device"] != "cpu"
    assert json.loads((run / "metrics.json").read_text())["val/top1_accuracy"] > 0


@pytest.mark.skipif(cuda_devices() < 2, reason="DDP needs 2 CUDA devices")
def test_ddp_on_two_gpus_writes_one_run(tmp_path, four_csv):
    run = tmp_path / "run"
    result = genre_lab_cli("train", "model=tiny", "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=1",
                           f"data.train_csv={four_csv}", f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "metrics.json").is_file()
    assert not list(tmp_path.glob("outputs")) and not list(tmp_path.glob("multirun"))  # ranks wrote into run


@needs_gpu
@pytest.mark.skipif(not (SHARED_DATA / "tmdb_movies_10genre.csv").is_file(), reason="../shared/data absent")
def test_gpu_bench_reports_the_fit_time(tmp_path):
    """scripts/gpu_bench.sh on a tenth of its rows (one epoch): the script, the experiment and timing.json."""
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BENCH_DIR": str(tmp_path), "GPU_BENCH_ROWS": "5400"}
    result = subprocess.run(["bash", "scripts/gpu_bench.sh", "trainer.max_epochs=1"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert timing["device"] != "cpu" and timing["train_samples_per_s"] > 0 and "gpu_bench: fit" in result.stdout
