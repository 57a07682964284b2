"""Our Optuna sweeper through the real CLI: pruning, failures, shared studies, reruns, submitit."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from genre_lab.sweeps.shares import available_cores
from genre_lab.sweeps.storage import open_storage
from tests.conftest import TINY_FAST, genre_lab_cli, genre_lab_here

optuna = pytest.importorskip("optuna")

# test-only search: the brute-force sampler tries each of the 6 points once, in some order; max_length=4 fails,
# and the threshold pruner (nothing reaches f1 1.01) stops every trial at its second epoch (step 1).
# So: (1 epoch, 32) COMPLETE; (2|3 epochs, 32) PRUNED after 2 epochs; (any, 4) FAIL.
PRUNE_SEARCH = """# @package _global_
defaults:
  - override /hydra/sweeper: genre_lab_optuna
  - override /hydra/sweeper/sampler: brute_force
  - override /hydra/sweeper/pruner: threshold
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: prune_test
    n_trials: 6
    sampler:
      seed: 1
    pruner:
      lower: 1.01
      n_warmup_steps: 1
    params:
      trainer.max_epochs: choice(1, 2, 3)
      data.max_length: choice(32, 4)
"""


def search_conf(tmp_path, name: str, text: str) -> list[str]:
    (tmp_path / "conf" / "hparams_search").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "hparams_search" / f"{name}.yaml").write_text(text)
    return [f"hparams_search={name}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]


def job_config(job_dir) -> dict:
    return yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())


def test_pruned_and_failed_trials_are_told_apart_and_the_search_goes_on(tmp_path, four_csv):
    sweep = tmp_path / "sweep"
    result = genre_lab_here("train", *search_conf(tmp_path, "prune_test", PRUNE_SEARCH), *TINY_FAST,
                            f"data.train_csv={four_csv}", f"hydra.sweep.dir={sweep}",
                            "hydra.sweeper.keep_checkpoints=2",
                            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    study = optuna.load_study(study_name="prune_test", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = {t.number: t.state.name for t in study.trials}
    expected = {}
    for trial in study.trials:
        epochs, length = trial.params["trainer.max_epochs"], trial.params["data.max_length"]
        # pruned after epoch 1 (0-based) when there is an epoch after it; max_epochs=2 ends there: COMPLETE
        expected[trial.number] = "FAIL" if length == 4 else "PRUNED" if epochs == 3 else "COMPLETE"
    assert states == expected and sorted(states.values()).count("FAIL") == 3  # all 6 ran despite failures

    summary = pd.read_csv(sweep / "sweep_summary.csv")
    status_of = {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed"}
    assert dict(zip(summary.trial, summary.status, strict=True)) == {n: status_of[s] for n, s in states.items()}
    for number, state in states.items():
        job = sweep / str(number)  # job directories are named by trial number
        assert job_config(job)["trial"]["number"] == number
        if state == "FAIL":
            assert "max_length=4 is too short" in json.loads((job / "failed.json").read_text())["error"]
            continue
        assert not (job / "failed.json").exists()  # a pruned trial is not a failure
        metrics = json.loads((job / "metrics.json").read_text())
        history = pd.read_csv(job / "csv" / "metrics.csv")
        if state == "PRUNED":
            assert metrics["status"] == "pruned" and metrics["epochs"] == 2 and metrics["pruned_after_epoch"] == 1
            assert metrics["best_reported"] == max(study.trials[number].intermediate_values.values())
            assert sorted(study.trials[number].intermediate_values) == [0, 1]
        else:
            assert "status" not in metrics and metrics["epochs"] == trial_epochs(study, number)
        assert metrics["best_checkpoint"] == str(job / "checkpoints" / "best.ckpt")
        assert sorted(history.epoch.dropna().unique()) == list(range(metrics["epochs"]))  # per-epoch history kept
    check_checkpoint_footprint(study, sweep, tmp_path)
    row = summary[summary.status == "pruned"].iloc[0]
    assert row.epochs == 2 and row["val/f1_micro"] == row["val/f1_micro"]  # epochs reached, value so far
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 3}
    compared = genre_lab_here("compare", str(sweep), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-3000:]
    ranked = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert sorted(ranked.status) == ["failed"] * 3 + ["ok"] * 2 + ["pruned"]  # every trial, ranked with its state


def trial_epochs(study, number: int) -> int:
    return study.trials[number].params["trainer.max_epochs"]


def check_checkpoint_footprint(study, sweep, tmp_path) -> None:
    """keep_checkpoints=2 of the 3 finished trials: the lowest-ranked lost its checkpoints (and eval says why);
    best.ckpt holds no optimizer state; a COMPLETE trial has no last.ckpt, a PRUNED one keeps it (resumable)."""
    import torch

    from genre_lab.sweeps.retention import trial_score

    finished = [t for t in study.trials if t.state.name != "FAIL"]
    removed = [t for t in finished if (sweep / str(t.number) / "checkpoints" / "REMOVED.txt").is_file()]
    assert len(removed) == 1
    score = {t.number: trial_score(t, maximize=True) for t in finished}
    assert score[removed[0].number] == min(score.values())
    gone = sweep / str(removed[0].number)
    assert not list((gone / "checkpoints").glob("*.ckpt")) and (gone / "metrics.json").is_file()
    refused = genre_lab_here("eval", f"run_dir={gone}", cwd=tmp_path)
    assert refused.returncode == 2 and "keep_checkpoints=2" in refused.stderr
    for trial in finished:
        if trial is removed[0]:
            continue
        folder = sweep / str(trial.number) / "checkpoints"
        best = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
        assert "optimizer_states" not in best and {"state_dict", "label_space", "decoder"} <= set(best)
        assert (folder / "last.ckpt").is_file() == (trial.state.name == "PRUNED")
        if trial.state.name == "PRUNED":
            last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
            assert "optimizer_states" in last  # what resume=true needs
            assert (folder / "best.ckpt").stat().st_size < 0.6 * (folder / "last.ckpt").stat().st_size


SHARED_SEARCH = """# @package _global_
defaults:
  - override /hydra/sweeper: genre_lab_optuna
  - override /hydra/sweeper/sampler: random
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: shared
    sampler:
      seed: 7
    params:
      model.lr: tag(log, interval(1e-4, 1e-2))
"""


def sweep_command(tmp_path, four_csv, sweep_dir, n_trials: int) -> list[str]:
    """A seeded random search over the learning rate on one shared sqlite study, 1 epoch per trial."""
    return [sys.executable, "-m", "genre_lab", "train", *search_conf(tmp_path, "shared", SHARED_SEARCH), *TINY_FAST,
            f"data.train_csv={four_csv}", "trainer.max_epochs=1", f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'shared.db'}", f"hydra.sweep.dir={sweep_dir}"]


@pytest.fixture(scope="module")
def shared_study(tmp_path_factory, four_csv):
    """Two sweep processes started at once on one sqlite study, 2 trials each, same seed."""
    root = tmp_path_factory.mktemp("shared")
    procs = [subprocess.Popen(sweep_command(root, four_csv, root / name, 2), cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-4000:]
    return root


def lrs(study) -> list[float]:
    return [t.params["model.lr"] for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.process
def test_two_sweeps_share_one_study(shared_study):
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{shared_study / 'shared.db'}")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]  # 2 + 2, distinct numbers
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert len(set(lrs(study))) == 4  # same seed, yet no parameter set twice
    jobs = {sweep: sorted(int(p.name) for p in (shared_study / sweep).iterdir() if (p / ".hydra").is_dir())
            for sweep in ("a", "b")}
    assert sorted(jobs["a"] + jobs["b"]) == [0, 1, 2, 3]  # each trial ran once, in a directory named by it
    for sweep, numbers in jobs.items():
        for number in numbers:
            job = shared_study / sweep / str(number)
            assert job_config(job)["trial"]["number"] == number
            assert job_config(job)["model"]["lr"] == pytest.approx(study.trials[number].params["model.lr"])


@pytest.mark.process
def test_a_rerun_continues_the_study_with_new_points(shared_study, four_csv):
    before = lrs(optuna.load_study(study_name="shared", storage=f"sqlite:///{shared_study / 'shared.db'}"))
    rerun = subprocess.run(sweep_command(shared_study, four_csv, shared_study / "c", 2), cwd=shared_study,
                           capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    after = lrs(optuna.load_study(study_name="shared", storage=f"sqlite:///{shared_study / 'shared.db'}"))
    assert after[:4] == before and len(after) == 6
    assert not set(after[4:]) & set(before)  # the old sweeper re-seeded identically and proposed these again
    assert sorted(int(p.name) for p in (shared_study / "c").iterdir() if p.is_dir()) == [4, 5]


@pytest.mark.process
def test_parallel_trials_run_at_once_on_split_cores_and_are_pruned_through_the_sweeps_own_journal(
        tmp_path, four_csv):
    """hydra/launcher=parallel, storage left null: 2 trials at once, each in its own process with 1 of the 2
    cores (GPU assignment: tests/sweeps/test_shares.py), reaching its trial through <sweep>/optuna.journal."""
    sweep = tmp_path / "sweep"
    result = genre_lab_cli(
        "train", "hparams_search=optuna", "hydra/launcher=parallel", *TINY_FAST, f"data.train_csv={four_csv}",
        "trainer.max_epochs=3", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=1.01", "hydra.sweeper.pruner.n_warmup_steps=1",
        "logger=many", f"hydra.sweep.dir={sweep}", cwd=tmp_path, env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="genre_lab",
                              storage=JournalStorage(JournalFileBackend(str(sweep / "optuna.journal"))))
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    timings = [json.loads((sweep / str(t.number) / "timing.json").read_text()) for t in study.trials]
    assert [t["torch_threads"] for t in timings] == [max(1, available_cores() // 2)] * 2  # cores split
    assert len({t["pid"] for t in timings}) == 2 and os.getpid() not in {t["pid"] for t in timings}
    jobs = [(t["job_started_at"], t["fit_ended_at"]) for t in timings]
    assert max(start for start, _ in jobs) < min(end for _, end in jobs)  # the two jobs ran at the same time
    for trial in study.trials:
        job = sweep / str(trial.number)
        assert json.loads((job / "metrics.json").read_text())["status"] == "pruned"
        assert sorted(trial.intermediate_values) == [0, 1]  # reported from the job's own process
        run_file = next(job.glob("wandb/offline-run-*/run-*.wandb")).read_bytes()
        assert b"trial/state" in run_file and b"pruned" in run_file  # the W&B run records it
    assert (pd.read_csv(sweep / "sweep_summary.csv").status == "pruned").all()


@pytest.mark.process
def test_a_ddp_trial_is_pruned_on_every_rank_and_ranks_run_no_sweep_of_their_own(tmp_path, four_csv):
    db = tmp_path / "study.db"
    result = genre_lab_cli(
        "train", "hparams_search=optuna", "trainer=ddp_cpu", *TINY_FAST, f"data.train_csv={four_csv}",
        "trainer.max_epochs=3", "hydra.sweeper.n_trials=1", "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=1.01", "hydra.sweeper.pruner.n_warmup_steps=1",
        f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
        timeout=300)  # ranks running sweeps of their own hung here
    assert result.returncode == 0, result.stderr[-4000:]
    study = optuna.load_study(study_name="genre_lab", storage=f"sqlite:///{db}")
    assert [t.state.name for t in study.trials] == ["PRUNED"]  # rank 1 stopped too, or fit would hang
    assert json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())["epochs"] == 2
    assert not (tmp_path / "multirun").exists()  # hparams_search sets MULTIRUN; a rank process must not sweep


def test_the_optuna_search_composes_with_the_slurm_launcher():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from genre_lab.config_dir import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", ["hparams_search=optuna", "hydra/launcher=slurm", "hydra/sweeper/pruner=hyperband",
                                "hydra.sweeper.storage=journal:///shared/study.log"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("GenreLabOptunaSweeper") and cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == cfg.seed
    assert sweeper.pruner._target_ == "optuna.pruners.HyperbandPruner"
    assert sweeper.params["model.lr"] == "tag(log, interval(1e-5, 3e-4))"


def test_the_ray_cluster_launcher_composes_where_hydra_ray_launcher_is_installed():
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")  # the ray extra: not in dev (see ray_cluster.yaml)
    from hydra import compose, initialize_config_dir

    from genre_lab.config_dir import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", ["hparams_search=optuna", "hydra/launcher=ray_cluster", "trainer.devices=2"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("RayLauncher") and cfg.hydra.launcher.ray.init.address == "auto"
    assert cfg.hydra.launcher.ray.remote.num_gpus == 2


# a one-epoch search of the tiny model on the bundled sample
SEARCH = ("train", "-m", "hparams_search=optuna", *TINY_FAST, "data=sample", "trainer.max_epochs=1")


@pytest.mark.parametrize("bad", ["model.lr=interval(1e-3,1e-5)", "model.lr=tag(log,interval(0,1e-3))",
                                 "trainer.max_epochs=range(3,1)", "hydra.sweeper.n_trials=0",
                                 "hydra.sweeper.n_trials=-1", "hydra.sweeper.params.model.lr=interval(1e-5,1e-3)",
                                 "resume=true", "hydra.sweeper.on_timeout=kill", "hydra.sweeper.max_retries=-1",
                                 "hydra.sweeper.heartbeat_interval=5",
                                 "hydra.sweeper.heartbeat_interval=0",
                                 "hydra.sweeper.grace_period=1", "hydra.sweeper.confirm.top_k=30",
                                 "hydra.sweeper.confirm.top_k=2 hydra.sweeper.confirm.seeds=[]",
                                 "hydra.sweeper.confirm.top_k=1", "hydra.sweeper.confirm.top_k=-1"])
def test_a_search_that_cannot_start_is_one_line_exit_2_and_writes_nothing(tmp_path, bad):
    sweep = tmp_path / "sweep"
    result = genre_lab_here(*SEARCH, *bad.split(' '), f"hydra.sweep.dir={sweep}",
                            cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Error in call" not in result.stderr
    assert not sweep.exists() or [p.name for p in sweep.iterdir()] == [".genre_lab.lock"]  # the guard's lock only
    if bad.startswith("hydra.sweeper.params."):  # the way to search a key from the command line
        assert "'model.lr=interval(1e-5,1e-3)'" in errors[0]


def test_a_search_whose_every_trial_fails_exits_non_zero(tmp_path):
    sweep = tmp_path / "sweep"
    result = genre_lab_here(*SEARCH, "data.batch_size=choice(0,-4)",
                            "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert ("genre-lab: error: every one of the 2 trials of this search failed, the first with: refused before "
            "launch: data.batch_size=") in result.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"FAIL": 2} and results["slots"][0]["trials"] == 0  # no job was started
    assert all("must be a whole number ≥ 1" in failed["error"] for failed in results["failed"])
    for trial in "01":  # recorded as a failed job is, without a process started for it
        assert "data.batch_size=" in json.loads((sweep / trial / "failed.json").read_text())["error"]
        assert job_config(sweep / trial)["trial"]["number"] == int(trial)
        assert not (sweep / trial / "checkpoints").exists()
    assert (pd.read_csv(sweep / "sweep_summary.csv").status == "failed").all()


def test_a_misspelt_added_key_is_refused_before_launch_with_the_settings_hint(tmp_path):
    result = genre_lab_here(*SEARCH, "+model.lrr=interval(0.1,0.2)", "hydra.sweeper.n_trials=2",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 1 and "model.lrr is not a setting of" in result.stderr
    assert "did you mean model.lr?" in result.stderr and "To append to your config use" not in result.stderr


def test_a_time_budget_ends_the_search_and_the_summary_says_so(tmp_path):
    """No trial starts after hydra.sweeper.timeout; the one running finishes; the budget, not n_trials, is named."""
    sweep = tmp_path / "sweep"
    result = genre_lab_here(*SEARCH, "hydra.sweeper.n_trials=50",
                            "hydra.sweeper.timeout=0.5", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["ended_by"] == "timeout" and results["trials_launched"] == 1 and results["states"] == {"COMPLETE": 1}
    assert "not n_trials, ended this search after 1 trials" in (sweep / "sweep_summary.md").read_text()


@pytest.mark.parametrize("bad", ["hydra.sweeper.timeout=-1", "hydra.sweeper.timeout=0", "hydra.sweeper.timeout=abc"])
def test_a_bad_time_budget_is_refused(tmp_path, bad):
    result = genre_lab_here(*SEARCH, bad,
                            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 2 and "genre-lab: error: hydra.sweeper.timeout=" in result.stderr, result.stderr


def test_on_timeout_stop_stops_the_running_trial_at_its_next_epoch_end_with_its_results(tmp_path):
    sweep = tmp_path / "sweep"
    result = genre_lab_here(*SEARCH, "trainer.max_epochs=40", "hydra.sweeper.n_trials=5", "hydra.sweeper.timeout=0.5",
                            "hydra.sweeper.on_timeout=stop", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["ended_by"] == "timeout" and results["states"] == {"PRUNED": 1}
    assert results["stopped_by_budget"] == [0] and results["on_timeout"] == "stop"
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["status"] == "pruned" and metrics["stopped_by"] == "timeout" and metrics["epochs"] == 1
    assert (sweep / "0" / "checkpoints" / "best.ckpt").is_file()  # figures and checkpoints, as a pruned trial


def epochs_search(tmp_path, four_csv, launcher: str, epochs: tuple[int, ...]) -> tuple:
    """A search on 2 slots of ``launcher`` whose trials train ``epochs`` (enqueued in that order); its sweep
    directory and its study."""
    db = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=db, study_name="slots", direction="maximize")
    for count in epochs:
        study.enqueue_trial({"trainer.max_epochs": count})
    sweep = tmp_path / "sweep"
    choices = ",".join(map(str, sorted(set(epochs))))
    result = genre_lab_cli(
        "train", "hparams_search=optuna", f"hydra/launcher={launcher}", *TINY_FAST, f"data.train_csv={four_csv}",
        f"trainer.max_epochs=choice({choices})", f"hydra.sweeper.n_trials={len(epochs)}", "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/pruner=none", f"hydra.sweeper.storage={db}", "hydra.sweeper.study_name=slots",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return sweep, optuna.load_study(study_name="slots", storage=db)


@pytest.mark.process
def test_parallel_slots_start_the_next_trial_as_soon_as_one_ends(tmp_path, four_csv):
    """6 trials, 2 slots: trial 0 trains 50 epochs, the others 1 or 2; the short ones run one after another in the
    other slot while trial 0 still runs (no round barrier), each job in its own directory."""
    sweep, study = epochs_search(tmp_path, four_csv, "parallel", (50, 1, 1, 2, 1, 1))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    timing = {n: json.loads((sweep / str(n) / "timing.json").read_text()) for n in range(6)}
    assert [timing[n]["epochs"] for n in range(6)] == [50, 1, 1, 2, 1, 1]
    assert timing[2]["job_started_at"] < timing[0]["fit_ended_at"]  # trial 1's slot did not wait for trial 0
    assert len({timing[n]["pid"] for n in range(6)}) == 6
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sum(s["trials"] for s in results["slots"]) == 6 and results["slots"][0]["trials"] < 3


def wait_for(path, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the search ended before {path} appeared: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)


def ckpt_epoch(path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


def history_epochs(job) -> list[int]:
    """Epochs of the validation rows in the job's csv/metrics.csv (each once in a complete history)."""
    frame = pd.read_csv(job / "csv" / "metrics.csv")
    return sorted(frame.dropna(subset=["val/loss"])["epoch"].astype(int).tolist())


def job_pid(job_dir) -> int:
    """The process that has a file of ``job_dir`` open (its Hydra job log)."""
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            if any(os.readlink(f"/proc/{proc}/fd/{fd}").startswith(str(job_dir) + "/")
                   for fd in os.listdir(f"/proc/{proc}/fd")):
                return int(proc)
        except OSError:
            continue
    raise AssertionError(f"no process has a file of {job_dir} open")


# heartbeat every second; a trial with no beat for 3 s is stale
BEATS = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"]


@pytest.mark.process
@pytest.mark.parametrize("store", ["sqlite:///{}/study.db", "journal://{}/study.log"], ids=["sqlite", "journal"])
def test_a_killed_sweeper_s_trial_is_resumed_from_its_last_checkpoint_by_rerunning_the_command(tmp_path, store):
    sweep, db = tmp_path / "sweep", store.format(tmp_path)
    command = [sys.executable, "-m", "genre_lab", *SEARCH, "trainer.max_epochs=30", "hydra.sweeper.n_trials=1",
               f"hydra.sweeper.storage={db}", *BEATS, f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    wait_for(last, first)
    time.sleep(1.0)  # a few epochs more
    first.kill()  # kill -9, mid-trial
    first.wait()
    killed_at = ckpt_epoch(last)
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    study = optuna.load_study(study_name="genre_lab", storage=open_storage(db))
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "FAIL"), (1, "COMPLETE")]  # n_trials: once
    retried = study.trials[1]
    assert retried.user_attrs["retry_of"] == 0 and retried.params == study.trials[0].params
    assert min(retried.intermediate_values) == killed_at + 1  # trained on from last.ckpt, not from scratch
    assert json.loads((sweep / "0" / "metrics.json").read_text())["epochs"] == 30
    assert history_epochs(sweep / "0") == list(range(30))  # no epoch lost or repeated
    assert job_config(sweep / "0")["trial"]["number"] == 0  # the first record kept; the resume's beside it
    assert (sweep / "0" / ".hydra" / "resumes" / "1" / "config.yaml").is_file()
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["retries"] == [{"trial": 1, "retry_of": 0, "state": "COMPLETE", "dir": str(sweep / "0")}]
    assert results["trials_launched"] == 0 and results["retries_launched"] == 1
    assert "Trial 1 (COMPLETE) retried trial 0" in (sweep / "sweep_summary.md").read_text()


@pytest.mark.process
def test_kill_9_of_one_parallel_worker_the_search_goes_on_and_retries_it(tmp_path, four_csv):
    sweep, db = tmp_path / "sweep", f"sqlite:///{tmp_path / 'study.db'}"
    search = subprocess.Popen(
        [sys.executable, "-m", "genre_lab", *SEARCH, "hydra/launcher=parallel", f"data.train_csv={four_csv}",
         "trainer.max_epochs=30", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra/sweeper/pruner=none",
         f"hydra.sweeper.storage={db}", *BEATS, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    wait_for(last, search)
    os.kill(job_pid(sweep / "0"), signal.SIGKILL)
    _, err = search.communicate(timeout=600)
    assert search.returncode == 0, err[-4000:]
    study = optuna.load_study(study_name="genre_lab", storage=db)
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    assert study.trials[0].user_attrs["error"].startswith("its process ended without a result (UncompletedJobError")
    assert study.trials[2].user_attrs["retry_of"] == 0
    assert json.loads((sweep / "0" / "metrics.json").read_text())["epochs"] == 30
    assert history_epochs(sweep / "0") == list(range(30))


def job_processes(sweep) -> list[int]:
    found = []
    for job in sweep.iterdir():
        with contextlib.suppress(AssertionError):
            found.append(job_pid(job))
    return found


@pytest.mark.process
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_the_jobs_of_a_stopped_parallel_sweeper_stop_with_it_and_a_rerun_resumes_them(tmp_path, four_csv, sig):
    sweep, db = tmp_path / "sweep", f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "genre_lab", *SEARCH, "hydra/launcher=parallel", f"data.train_csv={four_csv}",
               "trainer.max_epochs=30", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
               "hydra/sweeper/pruner=none", f"hydra.sweeper.storage={db}", *BEATS, f"hydra.sweep.dir={sweep}"]
    search = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for trial in "01":
        wait_for(sweep / trial / "checkpoints" / "last.ckpt", search)
    search.send_signal(sig)
    _, err = search.communicate(timeout=120)
    assert search.returncode == (143 if sig == signal.SIGTERM else -9), err[-3000:]
    deadline = time.monotonic() + 60
    while job_processes(sweep) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not job_processes(sweep), "the jobs outlived their sweeper"
    for trial in "01":
        assert (sweep / trial / "checkpoints" / "interrupted.ckpt").is_file()  # stopped as a preempted run is
        assert not (sweep / trial / "metrics.json").exists()
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    study = optuna.load_study(study_name="genre_lab", storage=db)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert sorted(t.user_attrs["retry_of"] for t in study.trials[2:]) == [0, 1]
    if sig == signal.SIGTERM:  # told by the sweeper itself; after kill -9, found stale by the rerun
        assert {t.user_attrs["error"] for t in study.trials[:2]} == {"stopped with its sweeper (SIGTERM, Ctrl-C or "
                                                                       "a crash)"}
    for trial in "01":
        assert json.loads((sweep / trial / "metrics.json").read_text())["epochs"] == 30
        assert history_epochs(sweep / trial) == list(range(30))


def test_confirmation_retrains_the_top_configurations_over_seeds_and_names_a_winner(confirmed_search, tmp_path):
    sweep = confirmed_search
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"COMPLETE": 3} and results["trials_launched"] == 3  # confirmation: a study of its own
    confirmed = pd.read_csv(sweep / "confirmation.csv")
    assert len(confirmed) == 2 and (confirmed["seeds"] == 2).all()
    top = sorted(range(3), key=lambda n: -json.loads((sweep / str(n) / "metrics.json").read_text())["val/f1_micro"])
    assert set(confirmed["trial"]) == set(top[:2])
    runs = sorted((sweep / "confirm").iterdir(), key=lambda p: int(p.name))
    assert [p.name for p in runs] == ["0", "1", "2", "3"]  # 2 configurations x 2 seeds, tagged by their overrides
    seeds = sorted(job_config(run)["seed"] for run in runs)
    assert seeds == [1, 1, 2, 2]
    for _, row in confirmed.iterrows():  # each row's mean is the mean of its two runs' figures
        values = [json.loads((run / "metrics.json").read_text())["val/f1_micro"] for run in runs
                  if job_config(run)["model"]["lr"] == job_config(sweep / str(row["trial"]))["model"]["lr"]]
        assert row["mean"] == pytest.approx(sum(values) / 2, abs=1e-6)
    assert confirmed["mean"].is_monotonic_decreasing
    winner = yaml.safe_load((sweep / "best" / "winner.yaml").read_text())
    assert winner["winner_trial"] == confirmed["trial"][0] and winner["runner_up_trial"] == confirmed["trial"][1]
    assert all(os.path.isfile(c) for c in winner["winner_checkpoints"])
    low, high = winner["paired"]["interval_95"]
    assert low <= winner["paired"]["difference"] <= high and 0 <= winner["paired"]["winner_ahead_share"] <= 1
    assert results["confirmation"]["winner_trial"] == winner["winner_trial"]
    assert f"trial {winner['winner_trial']} wins" in (sweep / "sweep_summary.md").read_text()
    shown = genre_lab_here("compare", str(sweep), cwd=tmp_path)
    assert shown.returncode == 0 and "the top configurations retrained over seeds" in shown.stdout


@pytest.mark.process
def test_any_hydra_launcher_gets_slots_too_submitit_local(tmp_path, four_csv):
    """A launcher without our slot API (hydra-submitit-launcher's submitit_local; SLURM and Ray likewise): a thread
    per slot hands it one job at a time, so a short trial's slot takes the next one while a long one trains."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep, study = epochs_search(tmp_path, four_csv, "submitit_local", (50, 1, 1))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    timing = {n: json.loads((sweep / str(n) / "timing.json").read_text()) for n in range(3)}
    assert timing[2]["job_started_at"] < timing[0]["fit_ended_at"]
    assert len({timing[n]["pid"] for n in range(3)}) == 3


@pytest.mark.process
def test_a_search_on_a_local_ray_keeps_both_slots_busy_with_no_failed_launch(tmp_path):
    """hydra/launcher=ray (the plugin's local Ray): two slot threads launch at once from the first trial on (Ray
    is started once before them: framework/compat.start_ray_of), and a freed slot takes the next trial."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")  # the ray extra: not in dev (see ray_cluster.yaml)
    sweep, db = tmp_path / "sweep", f"sqlite:///{tmp_path / 'study.db'}"
    result = genre_lab_cli(*SEARCH, "trainer.max_epochs=range(1,7)", "hydra.sweeper.n_trials=4",
                           "hydra.sweeper.n_jobs=2", "hydra/launcher=ray", f"hydra.sweeper.storage={db}",
                           f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"COMPLETE": 4} and "failed" not in results
    assert sum(slot["trials"] for slot in results["slots"]) == 4 and all(slot["trials"] for slot in results["slots"])
