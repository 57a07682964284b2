"""How a job reaches its Optuna trial, in the sweeper's process or on another node.

The sweeper gives every job a ``trial`` config node: ``{number, study_name, storage[, stop_at]}`` (an override, so it is
in the job's ``.hydra/`` files and its W&B config). The job opens the study through that storage; a study in
memory (storage null) is reached only from the sweeper's own process (the basic launcher), through
``IN_PROCESS``. The pruner is stored as a study attribute, so a job builds the same one the sweeper uses.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate

from genre_lab.config_dir import hydra_literal
from genre_lab.sweeps.storage import open_storage

log = logging.getLogger(__name__)

PRUNER_ATTR = "genre_lab:pruner"
# study name -> (study, its storage): studies of sweepers running in this process
IN_PROCESS: dict[str, tuple[Any, Any]] = {}


def trial_override(number: int, study_name: str, storage: str | None, stop_at: float | None = None) -> str:
    """The ``trial=…`` override that tells a job which trial it is (and, under ``on_timeout=stop``, the
    wall-clock time, seconds since the epoch, after which it stops at its next epoch end)."""
    url = "null" if storage is None else hydra_literal(storage)
    stop = "" if stop_at is None else f",stop_at:{stop_at:.3f}"
    return f"trial={{number:{number},study_name:{hydra_literal(study_name)},storage:{url}{stop}}}"


def store_pruner(study: Any, pruner_config: dict[str, Any] | None) -> None:
    """Record the pruner's config in the study, where jobs on any node find it."""
    study.set_user_attr(PRUNER_ATTR, pruner_config)


def reach_trial(node: Any) -> Any:
    """The ``optuna.trial.Trial`` that ``node`` (the job's ``trial`` config) names; None (with a warning) if
    it cannot be reached."""
    import optuna  # deferred: train imports this module, and optuna is an optional extra

    number, name, url = int(node["number"]), str(node["study_name"]), node.get("storage")
    if name in IN_PROCESS:
        study, storage = IN_PROCESS[name]
    elif url is None:
        log.warning("trial %d: study %r is in the sweeper's memory and this job runs in another process, so it is "
                    "not pruned; set hydra.sweeper.storage (sqlite:///…, journal:///…) to prune it", number, name)
        return None
    else:
        storage = open_storage(url)
        # the sampler is the sweeper's business; a random one keeps a job from building TPE for nothing
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
        pruner = study.user_attrs.get(PRUNER_ATTR)
        study.pruner = instantiate(pruner) if pruner else optuna.pruners.NopPruner()
    return optuna.trial.Trial(study, trial_id(storage, name, number))


def trial_id(storage: Any, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of ``study_name`` (public storage API)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
