"""Scale-out on CPU: DDP over 2 gloo processes (alone and inside a multirun), submitit, resume."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from genre_lab.evaluate import evaluate
from genre_lab.framework.distributed import RankZeroConsole, job_scope
from genre_lab.scoring.metrics import HEADLINE
from tests.conftest import REPO, TINY_FAST, compose_cfg, compose_train, genre_lab_cli


@pytest.mark.process
def test_ddp_cpu_trains_into_one_run_directory(tmp_path, four_csv):
    run = tmp_path / "run"
    result = genre_lab_cli("train", "trainer=ddp_cpu", *TINY_FAST, f"data.train_csv={four_csv}",
                           "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "world_size: 2" in result.stderr or "distributed_backend=gloo" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no second directory from rank 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "train_rank1.log").is_file()
    trained = json.loads((run / "metrics.json").read_text())
    # 128 training rows, 16 per device and step, 2 devices -> 4 steps per epoch
    assert trained["global_step"] == 8
    single = evaluate(compose_cfg("eval", [f"run_dir={run}", "cache=false", "plots=false"], tmp_path / "e"))
    for name in HEADLINE:
        assert single[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-4), name
    assert single["rows"] == 32  # exactly the validation rows, no DistributedSampler padding


@pytest.mark.process
def test_ddp_cpu_inside_a_multirun(tmp_path, four_csv):
    sweep = tmp_path / "sweep"
    result = genre_lab_cli("train", "-m", "trainer=ddp_cpu", *TINY_FAST, f"data.train_csv={four_csv}",
                           "trainer.max_epochs=1", "model.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    for job in ("0", "1"):
        assert sorted(p.name for p in (sweep / job / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert json.loads((sweep / job / "metrics.json").read_text())["global_step"] == 4
    summary = pd.read_csv(sweep / "sweep_summary.csv")
    assert len(summary) == 2 and (summary.status == "ok").all()
    trained = json.loads((sweep / "1" / "metrics.json").read_text())
    single = evaluate(compose_cfg("eval", [f"run_dir={sweep / '1'}", "cache=false", "plots=false"], tmp_path / "e"))
    for name in HEADLINE:
        assert single[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-4), name


@pytest.mark.process
def test_global_batch_size_is_split_over_devices(tmp_path, four_csv):
    run = tmp_path / "run"
    result = genre_lab_cli("train", "trainer=ddp_cpu", *TINY_FAST, f"data.train_csv={four_csv}",
                           "data.global_batch_size=64", "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "global batch 64 = 32 per device x 2 devices x 1 accumulation" in result.stdout
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 2  # 128 rows / 64


@pytest.mark.process
def test_submitit_local_runs_a_sweep(tmp_path, four_csv):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = genre_lab_cli("train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                           *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1", "model.lr=1e-3,2e-3",
                           f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert all((sweep / job / "metrics.json").is_file() for job in ("0", "1"))
    assert len(pd.read_csv(sweep / "sweep_summary.csv")) == 2


def test_slurm_launcher_is_wired_to_the_trainer():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from genre_lab.config_dir import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.additional_parameters.signal == "USR1@120"


def train_cli(tmp_path, four_csv, run, *extra, batch_size=4, epochs=3):
    return [sys.executable, "-m", "genre_lab", "train", *TINY_FAST, "trainer.precision=32-true",
            f"data.train_csv={four_csv}", f"data.batch_size={batch_size}", f"trainer.max_epochs={epochs}",
            f"hydra.run.dir={run}", *extra]


@pytest.mark.process
def test_last_checkpoint_every_epoch_and_resume_after_sigkill_keeps_the_full_history(tmp_path, four_csv):
    # lr 1e-12: the validation metric never improves after epoch 0, so best.ckpt stays there while last.ckpt
    # must follow every epoch (Lightning's save_last wrote it only on improvement); dropout and batch order
    # still make the per-epoch training figures depend on every (seed, epoch).
    args, shape = ["model.lr=1e-12"], {"batch_size": 16, "epochs": 4}
    straight = tmp_path / "straight"
    done = subprocess.run(train_cli(tmp_path, four_csv, straight, *args, **shape), cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    best, last = (torch.load(straight / "checkpoints" / f"{n}.ckpt", weights_only=True) for n in ("best", "last"))
    assert best["epoch"] < 3 and (last["epoch"], last["global_step"]) == (3, 32)

    killed = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=tests.killer.KillAt", "+callbacks.kill.epoch=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(train_cli(tmp_path, four_csv, killed, *args, *kill, **shape), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # resume starts at 2
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(train_cli(tmp_path, four_csv, killed, *args, "resume=true", **shape), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint path at" in resumed.stdout + resumed.stderr
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert (b["global_step"], b["epochs"]) == (a["global_step"], a["epochs"]) == (32, 4)
    for name in HEADLINE:  # same seeds per epoch, same kernels, same thread count: identical on CPU
        assert b[f"val/{name}"] == pytest.approx(a[f"val/{name}"], abs=1e-6), name
    # The per-epoch history: the same rows (epoch, step) and the same figures as the uninterrupted run.
    history_a = pd.read_csv(straight / "csv" / "metrics.csv")
    history_b = pd.read_csv(killed / "csv" / "metrics.csv")
    assert list(history_b.columns) == list(history_a.columns)
    assert history_b[["epoch", "step"]].fillna(-1).values.tolist() == \
        history_a[["epoch", "step"]].fillna(-1).values.tolist()
    assert sorted(history_b["epoch"].dropna().unique()) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(history_b, history_a, atol=1e-6, rtol=0)


@pytest.mark.process
def test_sigterm_saves_a_checkpoint_before_exit(tmp_path, four_csv):
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cli(tmp_path, four_csv, run, "trainer.max_epochs=50"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    saved = torch.load(run / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] >= torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def test_resume_needs_a_last_checkpoint_and_new_runs_never_reuse_a_directory(tmp_path, trained_run):
    from genre_lab.errors import GenreLabError
    from genre_lab.train import train

    with pytest.raises(GenreLabError, match="resume=true but .* does not exist"):
        train(compose_train(["model=tiny", "resume=true"], tmp_path / "fresh"))
    with pytest.raises(GenreLabError, match="already holds a trained model"):
        train(compose_train(["model=tiny"], trained_run))
    assert os.path.exists(trained_run / "metrics.json")


@pytest.mark.slow
def test_compiled_backbone_trains_and_saves_plain_weights(tmp_path, four_csv):
    from genre_lab.train import train

    metrics = train(compose_train([*TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                                   "model.compile=true"], tmp_path / "run"))
    state = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state)
    assert metrics["global_step"] == 8


def test_other_ranks_print_only_warnings_and_jobs_leave_the_environment_as_they_found_it(monkeypatch):
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    info = logging.LogRecord("genre_lab.train", logging.INFO, __file__, 1, "epoch done", None, None)
    warning = logging.LogRecord("genre_lab.train", logging.WARNING, __file__, 1, "disk low", None, None)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert not RankZeroConsole().filter(info) and RankZeroConsole().filter(warning)
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert RankZeroConsole().filter(info)

    monkeypatch.setenv("GENRE_LAB_KEPT", "1")
    monkeypatch.setenv("GENRE_LAB_CHANGED", "before")
    before = dict(os.environ)
    with job_scope():  # what a DDP job leaves behind: rank variables, a changed one, a removed one
        os.environ.update(LOCAL_RANK="1", MASTER_PORT="12910", GENRE_LAB_CHANGED="after")
        del os.environ["GENRE_LAB_KEPT"]
    assert dict(os.environ) == before
