"""``resume=true`` continues a run only under the settings its steps ran with.

A resumed run's composed config is compared with the config the run was started with (its ``.hydra/config.yaml``,
which a resume never replaces: each resume's own ``.hydra`` files go to ``.hydra/resumes/<n>/``). Settings that
change where or on what the run goes on are accepted and each is named in the log: a larger epoch or step budget,
loggers, devices and strategy, paths, data-loader workers, callbacks added or removed whole, genre_lab classes
that moved module, console and bookkeeping keys. Any other difference
(batch size, learning rate, data, model, precision, …) would make the record lie about how most steps ran, and
is refused, naming the keys and both values. A finished run resumed with nothing more to do is left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genre_lab.errors import GenreLabError
from genre_lab.runs.layout import RunLayout

log = logging.getLogger(__name__)

# keys (and everything below them) a resume may change: where and on what hardware it runs, what it logs to
RESUMABLE = (
    "hydra", "paths", "logger", "trial", "resume", "ckpt_path", "show_traceback",
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.sync_batchnorm",
    "trainer.plugins", "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.log_every_n_steps", "callbacks.progress_bar",
    "data.num_workers", "data.token_cache_dir", "data.eval_batch_size",
)
# groups whose entries a resume may add or remove whole (a callback that watches, stops or kills the run), but not
# change: callbacks.model_checkpoint.monitor changed is refused, +callbacks.my_probe=… accepted
WHOLE_ENTRIES = ("callbacks",)
# budgets a resume may raise, never lower (-1 or absent: no limit)
BUDGETS = ("trainer.max_epochs", "trainer.max_steps")
ABSENT = "(absent)"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists are leaves) of a plain config tree."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The unresolved config without Hydra's own node: interpolations compare as written, as config_id hashes."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)  # type: ignore[union-attr]
    return tree  # type: ignore[return-value]


def covered(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def budget(value: Any) -> float:
    return float("inf") if value in (None, -1, ABSENT) else float(value)


@dataclass
class ResumeChanges:
    """How a resume's config differs from the run's: accepted (named in the log) and refused (an error)."""

    accepted: dict[str, tuple[Any, Any]]
    refused: dict[str, tuple[Any, Any]]


def diff_configs(started: dict[str, Any], resumed: dict[str, Any]) -> ResumeChanges:
    old, new = flatten(started), flatten(resumed)
    accepted, refused = {}, {}
    for key in sorted((old.keys() | new.keys()) - {"resume"}):
        pair = (old.get(key, ABSENT), new.get(key, ABSENT))
        if pair[0] == pair[1]:
            continue
        if (covered(key, RESUMABLE) or (key in BUDGETS and budget(pair[1]) >= budget(pair[0]))
                or whole_entry(key, old, new) or moved_class(key, *pair)):
            accepted[key] = pair
        else:
            refused[key] = pair
    return ResumeChanges(accepted, refused)


def moved_class(key: str, was: Any, now: Any) -> bool:
    """A genre_lab class that moved to another module between the run's start and its resume: the same class."""
    names = [str(v) for v in (was, now)]
    return key.endswith("_target_") and all(n.startswith("genre_lab.") for n in names) and len(
        {n.rsplit(".", 1)[-1] for n in names}) == 1


def whole_entry(key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True for a key of an entry of ``WHOLE_ENTRIES`` that only one of the two configs has at all."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in WHOLE_ENTRIES:
        return False
    entry = f"{parts[0]}.{parts[1]}"
    return not (any(covered(k, (entry,)) for k in old) and any(covered(k, (entry,)) for k in new))


def started_config(run_dir: Path) -> dict[str, Any]:
    """The config a run was started with, as Hydra saved it; GenreLabError when the run has none."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        raise GenreLabError(f"resume=true but {layout.config} does not exist: {run_dir} holds no run started by "
                            "genre-lab train whose settings could be checked; point hydra.run.dir at the run to resume")
    return layout.read_config()


def check_resume(cfg: DictConfig, run_dir: Path, quiet: bool = False) -> ResumeChanges:
    """The accepted changes of resuming ``run_dir`` with ``cfg`` (each logged unless ``quiet``: the check before
    Hydra writes runs before logging is set up); GenreLabError naming every other changed key with both values."""
    changes = diff_configs(started_config(run_dir), plain(cfg))
    if changes.refused:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.refused.items())
        raise GenreLabError(
            f"resume=true with other settings than {run_dir} was trained with ({listed}). A resumed run must go on "
            f"as it started, or its record would be wrong for the steps already taken; a resume may raise "
            f"{' / '.join(BUDGETS)}, change loggers, devices, strategy, paths and workers, and add or remove "
            "callbacks. Drop those overrides, or start a new run (a new hydra.run.dir, ckpt_path=<its last.ckpt> to "
            "start from its weights)")
    if changes.accepted and not quiet:
        log.info("resume of %s with these changes: %s", run_dir, "; ".join(describe(changes.accepted)))
    return changes


def describe(changes: dict[str, tuple[Any, Any]]) -> list[str]:
    """One entry per changed key; a group added or removed whole (``logger=tensorboard``) as one entry."""
    out: list[str] = []
    moved = [key for key, pair in changes.items() if moved_class(key, *pair)]
    if moved:
        out.append(f"{len(moved)} genre_lab classes at their new modules ({', '.join(moved)})")
    for key, (was, now) in changes.items():
        if key in moved:
            continue
        if ABSENT in (was, now):
            entry = f"{'.'.join(key.split('.')[:2])} {'added' if was == ABSENT else 'removed'}"
        else:
            entry = f"{key} {was!r} -> {now!r}"
        if entry not in out:
            out.append(entry)
    return out


def budgets(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The epoch and step budget a run is given (what a finished run records in metrics.json as ``budget``)."""
    flat = flatten(cfg if isinstance(cfg, dict) else plain(cfg))
    return {key.split(".")[-1]: flat.get(key) for key in BUDGETS}


def finished_already(run_dir: Path, cfg: DictConfig) -> bool:
    """True when the run finished (metrics.json, not a pruned trial's) under a budget at least ``cfg``'s: resuming
    it again is then a no-op, not a second finish that rewrites its figures."""
    metrics = RunLayout(run_dir).read_metrics()
    if not metrics or metrics.get("status") == "pruned":
        return False
    done = metrics.get("budget") or budgets(started_config(run_dir))  # runs finished before budgets were recorded
    return all(budget(value) <= budget(done.get(key)) for key, value in budgets(cfg).items())


def nothing_to_do(run_dir: Path) -> str:
    return (f"resume=true: {run_dir} has finished already and this resume gives it no more epochs or steps; nothing "
            "to do, its files are left as they are (raise trainer.max_epochs to train it further)")
