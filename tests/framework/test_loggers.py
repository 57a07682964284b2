"""Weights & Biases, offline: every job of a multirun is its own, finished W&B run holding the metrics."""

import json
import subprocess
import sys

import pytest
import yaml

from genre_lab.compare import compare
from tests.conftest import REPO, TINY_FAST, genre_lab_cli


@pytest.mark.process
def test_offline_wandb_multirun_gives_one_run_per_job(tmp_path, four_csv):
    result = genre_lab_cli("train", "-m", *TINY_FAST, "logger=many", f"data.train_csv={four_csv}",
                           "trainer.max_epochs=1", "model.lr=1e-3,2e-3", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           cwd=tmp_path, env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    run_files = sorted((tmp_path / "sweep").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(run_files) == 2
    assert run_files[0].parents[2] != run_files[1].parents[2]  # one W&B run per job directory
    ids = {p.stem for p in run_files}
    assert len(ids) == 2
    for path in run_files:
        data = path.read_bytes()
        for key in (b"val/f1_micro", b"final/val/f1_micro", b"val/per_class", b"val/plots", b"model.lr",
                    b"config_id"):
            assert key in data, (path, key)
        assert str(four_csv).encode() in data  # the resolved config is the run config
        # grouped by the sweep directory: W&B's group is its path with "-" for "/"
        assert (tmp_path / "sweep").as_posix().replace("/", "-").encode() in data

    config_ids = set()
    for path in run_files:  # each W&B run's config holds its job's config_id, to group seeds by in W&B
        own = json.loads((path.parents[2] / "metrics.json").read_text())["config_id"]
        assert own.encode() in path.read_bytes()
        config_ids.add(own)
    assert len(config_ids) == 2  # model.lr differs: two recipes, two groups
    table = compare(["--wandb-dir", str(tmp_path / "sweep")])  # offline runs, ranked
    assert sorted(table.wandb_run) == sorted(p.stem.removeprefix("run-") for p in run_files)
    assert table["val/f1_micro"].notna().all()


@pytest.mark.process
def test_wandb_sweep_definition_drives_the_hydra_cli(tmp_path):
    sweep = yaml.safe_load((REPO / "scripts" / "wandb_sweep.yaml").read_text())
    args_no_hyphens = []
    for key, spec in sweep["parameters"].items():
        value = spec["values"][0] if "values" in spec else spec["min"]
        args_no_hyphens.append(f"{key}={value}")
    command = []
    for part in sweep["command"]:
        if part == "${env}":
            continue
        if part == "${args_no_hyphens}":
            command += args_no_hyphens
        else:
            command.append(sys.executable if part == "python" else part)
    result = subprocess.run([*command, "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    job = yaml.safe_load(result.stdout)
    assert job["model"]["lr"] == sweep["parameters"]["model.lr"]["min"]
    assert job["trainer"]["max_epochs"] == 1 and job["data"]["batch_size"] == 16
    assert "wandb" in job["logger"]


def _train_with_wandb(tmp_path, four_csv):
    import pandas as pd

    from genre_lab.train import train
    from tests.conftest import QUIET, compose_train

    out = tmp_path / "run"
    metrics = train(compose_train(["model=tiny", "logger=many", f"data.train_csv={four_csv}", "trainer.max_epochs=2",
                                   "trainer.precision=32-true", "data.batch_size=32", *QUIET], out))
    history = pd.read_csv(out / "csv" / "metrics.csv")
    assert history["val/f1_micro"].notna().sum() == 2  # both epochs in the local CSV log
    assert (out / "metrics.json").is_file() and metrics["val/f1_micro"] > 0
    return out


def test_unreachable_wandb_leaves_training_and_local_logs_intact(tmp_path, four_csv, monkeypatch, caplog):
    import wandb

    def unreachable(**kwargs):
        raise wandb.errors.CommError("Network error (ConnectionError), entering retry loop")

    monkeypatch.setattr(wandb, "init", unreachable)
    with caplog.at_level("WARNING", logger="genre_lab.framework.loggers"):
        out = _train_with_wandb(tmp_path, four_csv)
    assert "logger 'wandb' could not start" in caplog.text and "CommError" in caplog.text
    assert not (out / "wandb").exists()


def test_wandb_failing_mid_run_is_muted_with_one_warning(tmp_path, four_csv, monkeypatch, caplog):
    from pytorch_lightning.loggers import WandbLogger

    def broken(self, metrics, step=None):
        raise ConnectionError("wandb backend went away")

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(WandbLogger, "log_metrics", broken)
    with caplog.at_level("WARNING", logger="genre_lab.framework.loggers"):
        _train_with_wandb(tmp_path, four_csv)
    warnings = [r for r in caplog.records if "logger call wandb.log_metrics failed" in r.getMessage()]
    assert len(warnings) == 1 and "wandb backend went away" in warnings[0].getMessage()


def test_tensorboard_holds_the_epochs_the_final_figures_the_config_and_the_plots(tmp_path, four_csv):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import TINY_FAST, genre_lab_here

    run = tmp_path / "run"
    result = genre_lab_here("train", *TINY_FAST, "logger=tensorboard", f"data.train_csv={four_csv}",
                            "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    assert len(events.Scalars("val/f1_micro_tuned")) == 2  # one point per epoch
    final = events.Scalars("final/val/f1_micro")[-1].value
    assert final == pytest.approx(json.loads((run / "metrics.json").read_text())["val/f1_micro"], abs=1e-6)
    assert {"val/plots/pr_curves", "val/plots/f1_vs_threshold"} <= set(tags["images"])
    assert any(t.startswith("val/per_class") for t in tags["tensors"])  # the per-genre table, as text
    hparams = yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["model"]["lr"] == 5e-3 and hparams["config_id"]  # the resolved config
    assert (run / "csv" / "metrics.csv").is_file()  # the history resume and compare read stays


def test_an_mlflow_multirun_is_one_experiment_with_a_run_per_job(tmp_path, four_csv):
    mlflow = pytest.importorskip("mlflow")
    from tests.conftest import TINY_FAST, genre_lab_here

    sweep, db = tmp_path / "sweep", f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = genre_lab_here("train", "-m", *TINY_FAST, "logger=mlflow", f"logger.mlflow.tracking_uri={db}",
                            f"logger.mlflow.artifact_location={tmp_path / 'mlartifacts'}",
                            f"data.train_csv={four_csv}", "trainer.max_epochs=2", "model.lr=1e-3,2e-3",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(db)
    experiment = client.get_experiment_by_name(sweep.as_posix().replace("/", "-"))
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.data.params["model/lr"] for r in runs} == {"0.001", "0.002"}
    for found in runs:
        assert found.info.status == "FINISHED"
        assert len(client.get_metric_history(found.info.run_id, "val/f1_micro_tuned")) == 2
        assert "final/val/f1_micro" in found.data.metrics and found.data.params["config_id"]
        artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "val/plots")}
        assert {"val/plots/pr_curves.png", "val/plots/f1_vs_threshold.png"} <= artifacts
        assert "val/per_class.csv" in {a.path for a in client.list_artifacts(found.info.run_id, "val")}


def test_an_unreachable_mlflow_server_is_left_out_and_training_goes_on(tmp_path, four_csv, monkeypatch):
    pytest.importorskip("mlflow")
    from tests.conftest import TINY_FAST, genre_lab_here

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run = tmp_path / "run"
    result = genre_lab_here("train", *TINY_FAST, "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9",
                            f"data.train_csv={four_csv}", "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logger 'mlflow' could not start" in result.stderr + result.stdout
    assert (run / "metrics.json").is_file() and (run / "csv" / "metrics.csv").is_file()


def _refusing_url() -> str:
    """An http URL on 127.0.0.1 whose port refuses connections (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_refusing_mlflow_server_is_left_out_within_seconds_with_one_warning(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mlflow")
    import time

    from genre_lab.framework.loggers import instantiate_loggers
    from tests.conftest import compose_train

    for variable in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):  # MLflow's defaults: ~4 min
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    url = _refusing_url()
    cfg = compose_train(["logger=mlflow", f"logger.mlflow.tracking_uri={url}"], tmp_path / "run")
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="genre_lab.framework.loggers"):
        loggers = instantiate_loggers(cfg.logger)
    assert time.monotonic() - started < 30  # a guard against MLflow's retries, not a benchmark
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    warnings = [r.getMessage() for r in caplog.records if "'mlflow'" in r.getMessage()]
    assert len(warnings) == 1 and "could not start" in warnings[0] and url in warnings[0]


def test_a_multirun_asks_an_unreachable_server_once(tmp_path, four_csv, monkeypatch):
    pytest.importorskip("mlflow")
    from tests.conftest import TINY_FAST, genre_lab_here

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # should a job reach MLflow's client, fail fast
    url, sweep = _refusing_url(), tmp_path / "sweep"
    result = genre_lab_here("train", "-m", *TINY_FAST, "logger=mlflow", f"logger.mlflow.tracking_uri={url}",
                            f"data.train_csv={four_csv}", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                            "model.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("logger 'mlflow' could not start") == 1  # the first job asked the server
    assert output.count("did not answer an earlier job of this sweep") == 1  # the second did not ask again
    assert list(sweep.glob(".unreachable-127.0.0.1_*"))
    for job in ("0", "1"):
        assert (sweep / job / "metrics.json").is_file() and (sweep / job / "csv" / "metrics.csv").is_file()


def test_an_unusable_logger_folder_is_one_error_line_and_exit_2(tmp_path, four_csv):
    from tests.conftest import TINY_FAST, genre_lab_here

    result = genre_lab_here("train", *TINY_FAST, "logger=tensorboard", "logger.tensorboard.save_dir=/dev/null/x",
                            f"data.train_csv={four_csv}", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}",
                            cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "logger.tensorboard.save_dir=/dev/null/x" in lines[0] and "/dev/null is not a folder" in lines[0]


@pytest.mark.parametrize("setting", ["logger.mlflow.tracking_uri=sqlite:////dev/null/x/mlflow.db",
                                     "logger.mlflow.tracking_uri=file:///dev/null/x",
                                     "logger.mlflow.artifact_location=/dev/null/x"])
def test_every_local_logger_path_is_checked_before_a_logger_starts(setting, tmp_path, monkeypatch):
    from genre_lab.errors import GenreLabError
    from genre_lab.framework.loggers import instantiate_loggers
    from tests.conftest import compose_train

    monkeypatch.chdir(tmp_path)  # the other MLflow paths' default: beside where genre-lab runs
    cfg = compose_train(["logger=mlflow", setting], tmp_path / "run")
    with pytest.raises(GenreLabError, match="/dev/null is not a folder") as raised:
        instantiate_loggers(cfg.logger)  # not MLflow's traceback, nor a warning and a run without MLflow
    assert str(raised.value).startswith(setting)


@pytest.mark.parametrize(("logger", "in_group"), [("logger=csv", 1), ("logger=tensorboard", 1), ("~logger", 0)])
def test_a_training_run_has_one_csv_history_whatever_the_loggers(logger, in_group, tmp_path):
    from pathlib import Path

    from pytorch_lightning.loggers import CSVLogger

    from genre_lab.framework.loggers import instantiate_loggers
    from tests.conftest import compose_train

    def csv_loggers(loggers):
        return [lg for lg in loggers if isinstance(lg, CSVLogger)]

    out = tmp_path / "run"
    group = compose_train([logger], out).get("logger")
    loggers = instantiate_loggers(group, history_dir=out)  # as train calls it
    assert len(csv_loggers(loggers)) == 1 and loggers[0] is csv_loggers(loggers)[0]  # never twice
    assert Path(loggers[0].log_dir) == out / "csv"
    assert len(csv_loggers(instantiate_loggers(group))) == in_group  # eval, ensemble: only what the group holds


def test_wandb_alone_keeps_the_csv_history(tmp_path, four_csv):
    import pandas as pd

    from genre_lab.train import train
    from tests.conftest import QUIET, compose_train

    out = tmp_path / "run"  # WANDB_MODE=offline (tests/conftest.py)
    train(compose_train(["model=tiny", "logger=wandb", f"data.train_csv={four_csv}", "trainer.max_epochs=2",
                         "trainer.precision=32-true", "data.batch_size=32", *QUIET], out))
    history = pd.read_csv(out / "csv" / "metrics.csv")
    assert history["val/f1_micro"].notna().sum() == 2 and "final/val/f1_micro" in history
    assert list(out.glob("wandb/offline-run-*"))  # and W&B logged too


def test_an_online_wandb_server_that_refuses_is_left_out_within_seconds(tmp_path, monkeypatch, caplog):
    import time

    from genre_lab.framework import logger_checks, loggers
    from tests.conftest import compose_train

    monkeypatch.setenv("WANDB_BASE_URL", _refusing_url())
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "online")
    cfg = compose_train(["logger=wandb"], tmp_path / "run")
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="genre_lab.framework.loggers"):
        assert loggers.instantiate_loggers(cfg.logger) == []  # W&B's own init waits ~90 s before giving up
    assert time.monotonic() - started < 30
    assert [r.getMessage() for r in caplog.records if "'wandb' could not start" in r.getMessage()]
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert logger_checks.service_url(cfg.logger.wandb) is None  # offline: no server to ask
