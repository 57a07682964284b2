"""Where the Hydra configs live, and the OmegaConf resolvers they use.

The trap: Hydra's ``config_path`` is relative to the module, but our configs sit at the top level
(``conf/``), which a plain ``pip install .`` would not ship. The wheel therefore carries them as
``genre_lab/conf`` (see pyproject), and a source checkout / editable install uses ``<repo>/conf``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PACKAGE_DIR / "resources"


def config_dir() -> Path:
    """Absolute path of the config tree: the checkout's ``conf/`` first, else the wheel's copy."""
    for candidate in (PACKAGE_DIR.parent / "conf", PACKAGE_DIR / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"genre_lab configs not found next to {PACKAGE_DIR}: expected conf/train.yaml in the checkout "
        "or in the installed package. Reinstall genre_lab (pip install .)."
    )


@functools.cache
def config_keys(name: str) -> frozenset[str]:
    """Top-level keys of the entry config ``name`` (e.g. ``predict``), its defaults-list groups and ``hydra``
    included: every key a composed config of that command can hold without a ``+`` override."""
    conf = OmegaConf.load(config_dir() / f"{name}.yaml")
    entries = [e for e in conf.get("defaults", []) if isinstance(e, DictConfig)]  # ``_self_`` is a plain string
    groups = {str(key).split()[-1].split("/")[0] for entry in entries for key in entry}  # "optional a/b" -> "a"
    return frozenset((set(conf) - {"defaults"}) | groups | {"hydra"})


def hydra_literal(value: str) -> str:
    """``value`` as a quoted Hydra override value that composes back to exactly ``value``.

    Unquoted, Hydra reads commas as a sweep ("Ambiguous value") and strips quotes. In single quotes only
    ``'`` and the backslashes before a quote or the end need escaping; OmegaConf would still resolve
    ``${…}``, which ``\\${`` keeps literal (backslashes before it doubled).
    """
    value = re.sub(r"(\\*)\$\{", lambda m: m[1] * 2 + "\\${", value)
    value = re.sub(r"(\\*)('|\Z)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), value)
    return f"'{value}'"


def _auto_precision() -> str:
    from genre_lab.framework.hardware import default_precision  # deferred: torch, not needed to compose

    return default_precision()


# final figures whose per-epoch counterpart is logged at the epoch's best global threshold (BestThresholdF1)
TUNED_PER_EPOCH = ("val/f1_micro", "val/f1_macro")


def epoch_metric(metric: str, tuning_metric: str | None = None) -> str:
    """The per-epoch figure that stands for ``metric`` (train.yaml ``monitor``): when thresholds are tuned
    after training (``tuning_metric`` set), ``val/f1_micro`` is reported as ``val/f1_micro_tuned``, F1 at that
    epoch's best global threshold, because that is how the final figure is computed; other metrics as they are."""
    return f"{metric}_tuned" if tuning_metric and metric in TUNED_PER_EPOCH else metric


def monitor_mode(metric: str) -> str:
    """``min`` for a loss, ``max`` for every other figure genre_lab logs."""
    return "min" if metric.rsplit("/", 1)[-1] == "loss" else "max"


def register_resolvers() -> None:
    """``${gl_resource:name}``: absolute path of a file shipped in genre_lab/resources;
    ``${gl_precision:}``: bf16-mixed where the hardware does bf16 natively, else 32-true (16-mixed on old GPUs);
    ``${gl_epoch_metric:metric,tuning_metric}`` and ``${gl_mode:metric}``: ``epoch_metric``, ``monitor_mode``.
    """
    if not OmegaConf.has_resolver("gl_epoch_metric"):
        OmegaConf.register_new_resolver("gl_epoch_metric", epoch_metric)
    if not OmegaConf.has_resolver("gl_mode"):
        OmegaConf.register_new_resolver("gl_mode", monitor_mode)
    if not OmegaConf.has_resolver("gl_resource"):
        OmegaConf.register_new_resolver("gl_resource", lambda name: str(RESOURCES_DIR / name))
    if not OmegaConf.has_resolver("gl_precision"):
        OmegaConf.register_new_resolver("gl_precision", _auto_precision)
