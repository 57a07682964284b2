"""`genre-lab train`'s settings, checked before a run reads data or writes anything.

Each class checks its own arguments (Decoder, GenreDataModule, GenreClassifier); this module adds what only
the whole config knows: keys that no class takes, the seed, the epoch budget, the checkpoint to start from.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from genre_lab.data.datamodule import data_defaults
from genre_lab.data.movie_data import check_data_settings
from genre_lab.errors import GenreLabError, require_int
from genre_lab.framework.logger_checks import check_logger_paths
from genre_lab.model.module import GenreClassifier, check_hparams
from genre_lab.scoring.figure_names import HEADLINE, PER_CLASS

log = logging.getLogger(__name__)
MAX_SEED = 2**32 - 1  # numpy's and Lightning's limit
INSTANTIATED = ("data", "model", "decode", "trainer", "tuning", "calibration", "optimizer", "scheduler", "peft")
# the model.* keys check_hparams checks: its own signature (the keyword-only rest are not model.* keys), so the two
# cannot drift
HPARAM_KEYS = tuple(name for name, p in inspect.signature(check_hparams).parameters.items()
                    if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
# Lightning's ckpt_path shortcuts besides a file
CKPT_NAMES = ("last", "best", "hpc")
# what a transformer's model config can hold (the keys an experiment written for a transformer sets under model)
TRANSFORMER_KEYS = frozenset(inspect.signature(GenreClassifier).parameters)
SET_BY_TRAIN = ("label_names", "multi_label", "seed")  # the baseline's arguments that train passes, not the config


def check_train_settings(cfg: DictConfig) -> None:
    """GenreLabError for the first setting a run cannot train with; the data and the backbone are checked later.
    The one change it makes: a baseline drops the transformer settings it inherited (``strip_transformer_keys``)."""
    require_int(cfg.get("seed"), "seed", 0, 42, maximum=MAX_SEED)
    strip_transformer_keys(cfg)
    if "_target_" not in cfg.decode:
        raise GenreLabError("decode=checkpoint keeps a trained run's decision rule, for eval and predict; train "
                            "with decode=threshold (the default), top_k or at_least_one")
    # the classifier's own check (its label names, hence pos_weight per genre, come with the data)
    check_hparams(**{k: cfg.model[k] for k in HPARAM_KEYS if k in cfg.model}, optimizer=plain(cfg.get("optimizer")),
                  scheduler=plain(cfg.get("scheduler")), peft=plain(cfg.get("peft")))
    for key in INSTANTIATED:
        if cfg.get(key):
            check_keys(cfg[key], key)
    check_distillation(cfg)
    check_epochs(cfg.trainer)
    check_monitor(cfg.get("monitor"))
    check_start_checkpoint(cfg.get("ckpt_path"))
    check_logger_paths(cfg.get("logger"))  # before the data is read: a logger folder no run could write
    for key in ("tuning", "calibration"):  # used after training: a bad value must not cost the whole fit
        if cfg.get(key):
            hydra.utils.instantiate(cfg[key])
    for node in (cfg.get("callbacks") or {}).values():  # EMA/SWA: their constructors check decay, start_epoch
        if str((node or {}).get("_target_", "")).startswith("genre_lab.framework.weight_averaging."):
            hydra.utils.instantiate(node)
    check_calibration(cfg)


def check_calibration(cfg: DictConfig) -> None:
    """A fitted calibration scales a transformer's logits; the TF-IDF baseline's probabilities come from its
    scikit-learn model, which has none to scale."""
    target = str((cfg.get("calibration") or {}).get("_target_", ""))
    if fits_texts(cfg.model) and target and not target.endswith("NoCalibration"):
        raise GenreLabError(f"calibration={target.rsplit('.', 1)[-1].lower()} scales a transformer's logits; the "
                            f"TF-IDF baseline ({cfg.model._target_}) has none: use calibration=none with it")


def check_before_launch(cfg: DictConfig) -> None:
    """A sweeper's check of one job's composed config before it starts the job's process: the data settings and
    ``check_train_settings`` (loggers aside: their paths depend on the job's directory), so that a sampled value
    no run can take fails its trial at once, with the same message the job would give."""
    if cfg.get("task_name") != "train":
        return
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.logger = None
    data = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"}
    if data.get("folds") and data.get("fold") is None:  # a cross-validating job: checked as its first fold
        data["fold"] = 0
    check_data_settings({**data_defaults(), **data})
    check_train_settings(cfg)


def fits_texts(model_cfg: DictConfig) -> bool:
    """True for a model config whose class trains on texts itself (``fits_texts``), not as a LightningModule."""
    return bool(getattr(hydra.utils.get_class(model_cfg._target_), "fits_texts", False))


def command_line_keys() -> set[str] | None:
    """The keys this job's command line (or sweeper) sets; None outside a Hydra app, where the caller composed
    every key itself."""
    if not HydraConfig.initialized():
        return None
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    return {override.key_or_group for override in overrides}


def baseline_keys(model_cfg: DictConfig) -> tuple[list[str], list[str]]:
    """The settings a baseline's config can give it, and the transformer settings ``model_cfg`` holds besides."""
    params = inspect.signature(hydra.utils.get_class(model_cfg._target_)).parameters
    takes = [name for name in params if name not in SET_BY_TRAIN]
    return takes, [str(key) for key in model_cfg if key in TRANSFORMER_KEYS and key not in takes]


def strip_transformer_keys(cfg: DictConfig) -> None:
    """The TF-IDF baseline under a config written for a transformer (``experiment=quickstart model=tfidf_lr``):
    the transformer settings the experiment put under ``model`` (its lr, …) are removed with one info log, so the
    baseline fits any experiment's data and split. Typed on the command line (``model.lr=1e-3``) they are a
    mistake, not another model's recipe: refused, naming what the baseline takes. Outside a Hydra app, whose
    caller composed every key, they are all refused."""
    if not fits_texts(cfg.model):
        return
    target, (takes, foreign) = cfg.model._target_, baseline_keys(cfg.model)
    typed = command_line_keys()
    for key in foreign:
        if typed is None or f"model.{key}" in typed:
            how = (f"compose with ~model.{key}" if typed is None else
                   "the ones an experiment sets are left out by themselves")
            raise GenreLabError(f"model.{key} is a transformer setting; {target} takes {takes}: remove model.{key} "
                                f"({how})")
    if not foreign:
        return
    log.info("%s ignores the transformer setting(s) %s of the composed config (an experiment's)", target,
             {f"model.{key}": plain(cfg.model[key]) for key in foreign})
    with open_dict(cfg.model):
        for key in foreign:
            del cfg.model[key]


def check_distillation(cfg: DictConfig) -> None:
    """A teacher's weight needs a teacher, and only a transformer has one (the baseline is the teacher)."""
    teacher, weight = cfg.data.get("teacher"), cfg.model.get("distill_weight") or 0.0
    if teacher:
        check_keys(teacher, "data.teacher")
    if weight and not teacher:
        raise GenreLabError(f"model.distill_weight={weight} mixes a teacher's probabilities into the targets, but "
                            "no teacher is set: add data/teacher=tfidf_lr (or data/teacher=run data.teacher.run_dir=<a "
                            "cross-validation run>), or set model.distill_weight=0")
    if teacher and fits_texts(cfg.model):
        raise GenreLabError("data/teacher=... distils into a transformer; this model reads the texts itself "
                            "(the TF-IDF baseline): drop data/teacher")
    if teacher and not weight:  # not an error: a sweep over model.distill_weight=0,0.5 keeps the teacher set
        log.warning("data/teacher=... is set but model.distill_weight=0: the teacher's targets are not used")


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node) if isinstance(node, DictConfig) else node


def check_keys(node: DictConfig, key: str) -> None:
    """Every key of ``node`` is an argument of its ``_target_``: a key added with ``+`` (as Hydra suggests for
    a misspelt one, e.g. ``+trainer.max_epoch=2``) fails here, not as a TypeError deep in instantiation."""
    target = node.get("_target_")
    if not target:
        return
    params = inspect.signature(hydra.utils.get_object(target)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [name for name in node if not str(name).startswith("_") and name not in params]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(params), n=1)
        fix = f"did you mean {key}.{close[0]}?" if close else "remove it or fix its name"
        raise GenreLabError(f"{key}.{unknown[0]} is not a setting of {target}; {fix} "
                            f"(`--cfg job` prints the {key} keys)")


def check_epochs(trainer: DictConfig) -> None:
    """At least one epoch: ``max_epochs=0`` would "finish" with an untrained model. No epoch limit
    (``max_epochs=-1`` or null) only together with ``max_steps``, as Lightning allows."""
    if trainer.get("fast_dev_run"):
        return
    steps = trainer.get("max_steps", -1)
    if steps != -1:
        require_int(steps, "trainer.max_steps", 1, 1000)
    epochs = trainer.get("max_epochs")
    if epochs in (None, -1) and steps != -1:
        return
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise GenreLabError(f"trainer.max_epochs={epochs!r} must be a whole number ≥ 1, e.g. trainer.max_epochs=3 "
                            "(or -1 with +trainer.max_steps=<N> to stop after N steps)")


def check_monitor(monitor: Any) -> None:
    """``monitor`` names a figure logged every epoch: Lightning would find out only after the first one."""
    figures = (*HEADLINE, "loss", "f1_micro_tuned", "f1_macro_tuned")
    known = [f"val/{name}" for name in figures] + [f"train/{name}" for name in (*HEADLINE, "loss")]
    stage, _, rest = str(monitor).partition("/")
    per_genre = stage in ("train", "val") and rest.split("/")[0] in PER_CLASS[:3] and rest.count("/") == 1
    if monitor in known or per_genre:
        return
    close = difflib.get_close_matches(str(monitor), known, n=1)
    raise GenreLabError(f"monitor={monitor!r} is not a figure logged every epoch; "
                        f"{f'did you mean {close[0]}? ' if close else ''}choose one of {known[:8]}…, or "
                        "val/f1/<genre> (monitor follows optimized_metric unless set: set monitor=val/… for this "
                        "optimized_metric)")


def check_start_checkpoint(ckpt_path: Any) -> None:
    if ckpt_path is None or ckpt_path in CKPT_NAMES or str(ckpt_path).startswith("registry"):
        return
    if not Path(str(ckpt_path)).is_file():
        raise GenreLabError(f"ckpt_path={ckpt_path}: no such checkpoint file; give a .ckpt file, or "
                            "resume=true with hydra.run.dir=<the run> to continue a run")
