"""Every config composes; the experiments hold exactly the values they promise."""

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genre_lab.config_dir import config_dir
from tests.conftest import compose_train

GROUPS = ["data", "model", "decode", "tuning", "callbacks", "logger", "trainer", "experiment", "debug",
          "hparams_search"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_composes_and_resolves(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["_target_"] == "genre_lab.data.datamodule.GenreDataModule"
    assert resolved["model"]["_target_"] == "genre_lab.model.module.GenreClassifier"
    if option == "checkpoint":  # eval/predict only (tests/test_evaluate.py); train refuses it
        assert "_target_" not in cfg.decode
    else:
        instantiate(cfg.decode)
    for name, callback in cfg.callbacks.items():
        assert instantiate(callback) is not None, name
    for name, logger in cfg.logger.items():
        assert instantiate(logger) is not None, name


def test_defaults(tmp_path):
    cfg = compose_train([], tmp_path)
    assert cfg.model.backbone == "distilbert-base-uncased"
    assert cfg.data.train_csv == "./data/movie-genre-prediction/train.csv"
    assert cfg.data.max_length == 128 and cfg.data.val_size == 0.2
    assert cfg.optimized_metric == "val/f1_micro"
    # thresholds are tuned after training, so checkpoints are picked by F1 at each epoch's best threshold
    assert cfg.monitor == cfg.callbacks.model_checkpoint.monitor == "val/f1_micro_tuned"
    assert cfg.callbacks.model_checkpoint.mode == "max"


@pytest.mark.parametrize(("overrides", "monitor", "mode"), [
    (["optimized_metric=val/f1_macro"], "val/f1_macro_tuned", "max"),
    (["~tuning"], "val/f1_micro", "max"),  # the final figure is at the fixed rule, so is the per-epoch one
    (["optimized_metric=val/auroc_micro"], "val/auroc_micro", "max"),
    (["optimized_metric=val/loss"], "val/loss", "min"),
    (["monitor=val/top1_accuracy"], "val/top1_accuracy", "max"),
])
def test_monitor_follows_the_optimized_metric(overrides, monitor, mode, tmp_path):
    cfg = compose_train([*overrides, "callbacks=with_early_stopping"], tmp_path)
    for callback in (cfg.callbacks.model_checkpoint, cfg.callbacks.early_stopping):
        assert (callback.monitor, callback.mode) == (monitor, mode)


def test_seed_notebook_is_exactly_the_notebook(tmp_path):
    cfg = compose_train(["experiment=seed_notebook"], tmp_path)
    assert cfg.model.backbone == "distilbert-base-uncased"
    assert (cfg.data.batch_size, cfg.data.eval_batch_size) == (8, 8)
    assert cfg.model.lr == 2e-5 and cfg.model.weight_decay == 0.01 and cfg.model.warmup_ratio == 0.0
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.precision == "32-true"
    assert cfg.data.max_length == 128 and cfg.data.pad_to_max_length is True
    assert cfg.decode.threshold == 0.5 and cfg.decode.top_k is None and not cfg.decode.at_least_one
    assert cfg.data.val_size == 0.2 and cfg.seed == 42
    assert cfg.data.text_template == "{synopsis} {movie_name}"  # title after synopsis
    assert cfg.model.pos_weight is None and cfg.data.sample.frac is None
    assert cfg.model.prior_bias_init is False  # the HF head starts with a zero bias


def test_quickstart_is_offline(tmp_path):
    cfg = compose_train(["experiment=quickstart"], tmp_path)
    assert cfg.model.backbone == "minilm"
    assert cfg.data.train_csv.endswith("genre_lab/resources/sample_movies.csv")
