"""The Hydra plugin: config node ``hydra/sweeper=genre_lab_optuna`` and a thin ``Sweeper`` around
``genre_lab.sweeps.optuna_sweeper.OptunaSweeper``.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one imports neither Optuna nor the
sweep loop: without the ``optuna`` extra installed, other commands still start without a warning.
Samplers and pruners are config groups next to it: conf/hydra/sweeper/{sampler,pruner}/*.yaml.
No ``from __future__ import annotations``: Hydra's plugin scan runs this module before registering it in
``sys.modules``, where ``dataclass`` would look the string annotations up.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class GenreLabOptunaConf:
    _target_: str = "hydra_plugins.genre_lab_sweeper.genre_lab_optuna.GenreLabOptunaSweeper"
    # sampler and pruner arrive as configs: the sweeper instantiates the sampler with a derived seed
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = None
    pruner: Any = None
    direction: Any = "maximize"  # or a list, one per objective
    # null (in memory), sqlite:///study.db, journal:///shared/study.log, postgresql://…, mysql://…
    storage: Any = None
    study_name: Any = None
    n_trials: int = 20
    n_jobs: int = 1  # trials at once: when one ends, its slot starts the next
    max_failure_rate: float = 1.0
    timeout: Any = None  # seconds of wall-clock after which no trial starts; null: none
    on_timeout: str = "finish"  # running trials at the budget: finish, or stop at their next epoch end
    barrier: bool = False  # true: rounds of n_jobs trials that wait for their slowest (for benchmarks)
    # liveness through trial heartbeats: null = 60 s with a persistent storage (RDB or journal), off in memory
    heartbeat_interval: Any = None
    grace_period: Any = None  # a RUNNING trial with no beat for this long is stale (null: 3 × the interval)
    max_retries: Any = 1  # a stale or killed trial is re-run from its own last.ckpt at most this many times
    # after the search: the top_k configurations retrained with each seed, ranked by their mean (top_k 0: off)
    confirm: Any = field(default_factory=lambda: {"top_k": 0, "seeds": [1, 2, 3]})
    # null: every trial keeps its checkpoints; k: only the best k trials do (the others keep metrics and history)
    keep_checkpoints: Any = None
    params: Any = None


ConfigStore.instance().store(group="hydra/sweeper", name="genre_lab_optuna", node=GenreLabOptunaConf,
                             provider="genre_lab")


class GenreLabOptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        try:
            from genre_lab.sweeps.optuna_sweeper import OptunaSweeper  # deferred: module docstring
        except ImportError as err:
            raise ImportError(f"{err}; the Optuna sweeper needs: pip install 'genre_lab[optuna]'") from err
        from genre_lab.errors import GenreLabError, exit_with

        try:
            self.impl = OptunaSweeper(**kwargs)
        except GenreLabError as err:  # one line, not Hydra's "Error in call to target" report first
            exit_with(err)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins  # deferred: this module is imported during the plugin scan itself

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.impl.setup(config, self.launcher, self.validate_trial)

    def validate_trial(self, batch: Any) -> None:
        """Hydra's check that each job's overrides compose, then train's own settings checks on the composed
        config (genre_lab.settings.check_before_launch): a trial no run could train fails before its launch."""
        from genre_lab.errors import GenreLabError, record_refused_job  # deferred: module docstring
        from genre_lab.settings import check_before_launch

        self.validate_batch_is_legal(batch)
        for overrides in batch:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            try:
                check_before_launch(config)
            except GenreLabError as err:  # recorded as a failed job is: the summary and compare list it
                record_refused_job(config, overrides, err)
                raise

    def sweep(self, arguments: list[str]) -> Any:
        from genre_lab.errors import GenreLabError, exit_with  # deferred: module docstring

        try:
            return self.impl.sweep(arguments)
        except GenreLabError as err:  # one line, exit 2, rather than Hydra's report of an exception in a sweeper
            if type(err).__name__ == "SearchFailed":  # its trials ran: the sweep summary lists them all the same
                self.summarise()
            exit_with(err)

    def summarise(self) -> None:
        from hydra.utils import instantiate  # deferred: module docstring

        summary = self.config.hydra.callbacks.get("sweep_summary")
        if summary is not None:
            instantiate(summary).on_multirun_end(self.config)
