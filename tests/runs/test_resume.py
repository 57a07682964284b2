"""resume=true: only under the settings the run started with, its first config kept, a finished run left alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from genre_lab.errors import GenreLabError
from genre_lab.runs.resume import diff_configs
from tests.conftest import TINY_FAST, compose_train, genre_lab_here
from tests.runs.test_guard import error_lines, tree_digest


@pytest.fixture(scope="module")
def finished(tmp_path_factory, four_csv) -> tuple[Path, list[str]]:
    """A tiny run finished by the CLI (1 epoch, batch 16) and the arguments that trained it."""
    root = tmp_path_factory.mktemp("finished")
    args = [*TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1", "model.lr=3e-3"]
    result = genre_lab_here("train", *args, f"hydra.run.dir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", args


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A private copy of the finished run: each test may resume it."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


def resume(run: Path, args: list[str], *extra: str):
    return genre_lab_here("train", *args, *extra, f"hydra.run.dir={run}", "resume=true", cwd=run.parent)


def test_resume_with_other_training_settings_is_refused_naming_keys_and_values(run, finished):
    before = tree_digest(run)
    result = resume(run, finished[1], "trainer.max_epochs=3", "data.batch_size=64", "model.lr=1e-5")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-3000:]
    assert "data.batch_size: 16 -> 64" in lines[0] and "model.lr: 0.003 -> 1e-05" in lines[0]
    assert "max_epochs" not in lines[0].split("(")[1].split(")")[0]  # a raised budget is not among the refused
    assert tree_digest(run) == before  # refused before Hydra wrote .hydra/


def test_resume_in_process_is_checked_too(run, finished):
    from genre_lab.train import train

    with pytest.raises(GenreLabError, match=r"data.max_length: 128 -> 64"):
        train(compose_train([*finished[1], "data.max_length=64", "resume=true"], run))
    with pytest.raises(GenreLabError, match=r"seed: 42 -> 7"):
        train(compose_train([*finished[1], "seed=7", "resume=true"], run))


def test_resuming_a_finished_run_with_nothing_more_to_do_changes_no_byte(run, finished):
    before = tree_digest(run)
    result = resume(run, finished[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has finished already" in result.stdout and "nothing to do" in result.stdout
    assert tree_digest(run) == before  # the fixed-rule figures included: nothing is scored again


def test_a_resume_with_more_epochs_keeps_the_first_config_and_appends_its_own(run, finished):
    first = {name: (run / ".hydra" / name).read_bytes() for name in ("config.yaml", "overrides.yaml")}
    result = resume(run, finished[1], "trainer.max_epochs=2", "data.num_workers=0", "logger=many",
                    "~logger.wandb")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert "trainer.max_epochs 1 -> 2" in log and "resume of" in log
    assert {name: (run / ".hydra" / name).read_bytes() for name in first} == first
    resumed = yaml.safe_load((run / ".hydra" / "resumes" / "1" / "config.yaml").read_text())
    assert resumed["trainer"]["max_epochs"] == 2 and resumed["resume"] is True
    metrics = yaml.safe_load((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["budget"]["max_epochs"] == 2
    assert metrics["thresholds"]["fixed_threshold"] == 0.5  # the configured rule, not one tuned at the first finish
    # and now, at two epochs, it is finished: the same resume again is a no-op
    again = resume(run, finished[1], "trainer.max_epochs=2")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    assert not (run / ".hydra" / "resumes" / "2").exists()


def test_the_fixed_rule_is_the_configured_one_not_a_tuned_rule_stored_in_best_ckpt(run, finished):
    """A resumed run whose best epoch predates the resume scores best.ckpt, which holds the rule tuned at its first
    finish; the fixed-rule figures must still be those of decode.* (0.5)."""
    import hydra

    from genre_lab.runs.checkpoint import store_in_checkpoint
    from genre_lab.runs.results import Report
    from genre_lab.train import final_metrics

    best = run / "checkpoints" / "best.ckpt"
    stored = torch.load(best, weights_only=True)["decoder"]
    store_in_checkpoint(best, decoder={**stored, "threshold": 0.03})  # as if tuned to 0.03
    cfg = compose_train(finished[1], run / "rescored")
    data = hydra.utils.instantiate(cfg.data, _convert_="all").data
    data.tokenized()
    metrics = final_metrics(cfg, None, data, str(best), Report(run / "rescored", "val", "rescored", []))
    assert metrics["thresholds"]["fixed_threshold"] == 0.5


@pytest.mark.parametrize(("key", "old", "new", "accepted"), [
    ("trainer.max_epochs", 3, 5, True),
    ("trainer.max_epochs", 3, 2, False),
    ("trainer.max_epochs", 3, -1, True),
    ("trainer.max_steps", 100, -1, True),
    ("trainer.devices", 1, 2, True),
    ("trainer.strategy", "auto", "ddp", True),
    ("data.num_workers", 0, 4, True),
    ("paths.cache_dir", "/a", "/b", True),
    ("trainer.precision", "32-true", "bf16-mixed", False),
    ("data.batch_size", 16, 64, False),
    ("model.backbone", "a", "b", False),
    ("seed", 1, 2, False),
])
def test_which_settings_a_resume_may_change(key, old, new, accepted):
    def tree(value):
        top, *rest = key.split(".")
        return {top: value} if not rest else {top: {rest[0]: value}}

    changes = diff_configs(tree(old), tree(new))
    assert (key in changes.accepted) is accepted and (key in changes.refused) is (not accepted)


def test_a_callback_added_or_removed_whole_is_accepted_but_not_one_changed():
    first = {"callbacks": {"ckpt": {"monitor": "val/f1"}, "kill": {"epoch": 2}}}
    assert not diff_configs(first, {"callbacks": {"ckpt": {"monitor": "val/f1"}}}).refused
    assert not diff_configs(first, {"callbacks": {**first["callbacks"], "probe": {"x": 1}}}).refused
    changed = diff_configs(first, {"callbacks": {"ckpt": {"monitor": "val/loss"}, "kill": {"epoch": 2}}})
    assert list(changed.refused) == ["callbacks.ckpt.monitor"]


def test_a_genre_lab_class_that_moved_module_is_the_same_class_on_resume():
    def run(target):
        return {"trainer": {"plugins": [{"_target_": "x"}]}, "callbacks": {"seed": {"_target_": target}}}

    moved = diff_configs(run("genre_lab.callbacks.EpochSeed"), run("genre_lab.framework.callbacks.EpochSeed"))
    assert not moved.refused and "callbacks.seed._target_" in moved.accepted
    assert diff_configs(run("genre_lab.callbacks.EpochSeed"), run("genre_lab.callbacks.FlushLogs")).refused


def test_a_logger_group_added_on_resume_is_accepted():
    changes = diff_configs({"logger": {"csv": {"a": 1}}}, {"logger": {"csv": {"a": 1}, "wandb": {"project": "x"}}})
    assert list(changes.accepted) == ["logger.wandb.project"] and not changes.refused


def test_a_resumed_sweep_keeps_each_jobs_first_config_and_a_refused_job_its_results(tmp_path, four_csv):
    args = [*TINY_FAST, f"data.train_csv={four_csv}", "model.lr=1e-3,3e-3", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    assert genre_lab_here("train", "-m", *args, "trainer.max_epochs=1", cwd=tmp_path).returncode == 0
    job = tmp_path / "sweep" / "0"
    first = (job / ".hydra" / "config.yaml").read_bytes()
    more = genre_lab_here("train", "-m", *args, "trainer.max_epochs=2", "resume=true", cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert (job / ".hydra" / "config.yaml").read_bytes() == first
    assert yaml.safe_load((job / ".hydra" / "resumes" / "1" / "config.yaml").read_text())["trainer"]["max_epochs"] == 2
    results = {name: (job / name).read_bytes() for name in ("metrics.json", "val_probs.npz", "per_class.csv")}
    refused = genre_lab_here("train", "-m", *args, "trainer.max_epochs=3", "data.batch_size=64", "resume=true",
                             cwd=tmp_path)
    assert refused.returncode == 0  # a sweep goes on past a failed job
    assert {name: (job / name).read_bytes() for name in results} == results
    assert not (job / "failed.json").exists()  # the run still reads as the finished run it is
    failure = yaml.safe_load((job / ".hydra" / "resumes" / "2" / "failed.json").read_text())
    assert "data.batch_size: 16 -> 64" in failure["error"]
    assert (job / ".hydra" / "config.yaml").read_bytes() == first
