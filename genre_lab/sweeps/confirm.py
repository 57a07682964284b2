"""A winner that holds: after the search, the top-k configurations are trained again over fixed seeds.

The best trial of a search is one noisy draw, scored on the rows that tuned its thresholds. With
``hydra.sweeper.confirm.top_k=k`` the sweeper retrains the k best configurations with every seed of
``confirm.seeds`` (in the same slots, with the same time budget, never pruned), ranks them by their mean, and
compares the winner with the runner-up by the project's paired bootstrap (the seeds' runs pooled, the validation
rows resampled). The runs are trials of a study of their own, ``<study>.confirm``, in the same storage: tagged by
the trial they confirm and their seed, and never seen by the search's sampler (TPE would otherwise read the
repeated points as fresh evidence). Written to the sweep directory: ``confirmation.csv`` / ``.md`` (one row per
configuration), ``best/winner.yaml`` (the winning runs and checkpoints, the margin and how sure), and a
``confirmation`` entry in ``optimization_results.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from optuna.trial import TrialState

from genre_lab.errors import GenreLabError, require_int
from genre_lab.io import atomic_write_text
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.table import to_markdown
from genre_lab.scoring.report import print_table
from genre_lab.sweeps.retries import JOB_DIR

log = logging.getLogger(__name__)

CONFIRM_OF, SEED = "confirm_of", "seed"
CONFIRMATION = "confirmation.csv"


def check_confirm(confirm: Any, n_trials: int, n_objectives: int) -> tuple[int, list[int]]:
    """(top_k, seeds) from ``hydra.sweeper.confirm``; top_k 0 is off."""
    confirm = dict(confirm or {})
    top_k = require_int(confirm.get("top_k", 0), "hydra.sweeper.confirm.top_k", 0, 2)
    seeds = confirm.get("seeds", [1, 2, 3])
    if not top_k:
        return 0, []
    if isinstance(seeds, str | int) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise GenreLabError(f"hydra.sweeper.confirm.seeds={seeds!r} must be a non-empty list of whole numbers, "
                            "e.g. 'hydra.sweeper.confirm.seeds=[1,2,3]'")
    if len(set(seeds)) != len(seeds):
        raise GenreLabError(f"hydra.sweeper.confirm.seeds={list(seeds)} names a seed twice")
    if top_k > n_trials:
        raise GenreLabError(f"hydra.sweeper.confirm.top_k={top_k} is more than the {n_trials} trials this search "
                            f"runs (hydra.sweeper.n_trials): at most {n_trials} can finish; set top_k ≤ {n_trials}")
    if top_k < 2:
        raise GenreLabError("hydra.sweeper.confirm.top_k=1 has no runner-up to compare the winner with: set it ≥ 2")
    if n_objectives > 1:
        raise GenreLabError("hydra.sweeper.confirm ranks configurations by one value; this study has "
                            f"{n_objectives} objectives")
    return top_k, [int(s) for s in seeds]


def confirm_name(study: Any) -> str:
    return f"{study.study_name}.confirm"


def top_trials(study: Any, k: int) -> list[Any]:
    """The k best COMPLETE trials of the search (the study's direction)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(done, key=lambda t: t.value, reverse=maximize)[:k]


def enqueue(confirm_study: Any, tops: list[Any], seeds: list[int]) -> int:
    """One run per (configuration, seed) not yet COMPLETE in ``confirm_study``; how many were enqueued."""
    done = {(t.user_attrs.get(CONFIRM_OF), t.user_attrs.get(SEED))
            for t in confirm_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING))}
    count = 0
    for trial in tops:
        for seed in seeds:
            if (trial.number, seed) not in done:
                confirm_study.enqueue_trial(trial.params, user_attrs={CONFIRM_OF: trial.number, SEED: seed})
                count += 1
    return count


def confirmation_table(confirm_study: Any, tops: list[Any], seeds: list[int], maximize: bool) -> pd.DataFrame:
    """One row per confirmed configuration, best mean first: its search value, the mean, std and each seed's."""
    runs = {(t.user_attrs[CONFIRM_OF], t.user_attrs[SEED]): t
            for t in confirm_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    rows = []
    for trial in tops:
        mine = [runs[(trial.number, s)] for s in seeds if (trial.number, s) in runs]
        values = [t.value for t in mine]
        rows.append({"trial": trial.number, "search_value": trial.value, "seeds": len(values),
                     "mean": float(np.mean(values)) if values else np.nan,
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
                     **{f"seed {s}": runs[(trial.number, s)].value if (trial.number, s) in runs else np.nan
                        for s in seeds},
                     "params": " ".join(f"{k}={v}" for k, v in trial.params.items()),
                     "runs": [str(t.user_attrs.get(JOB_DIR)) for t in mine]})
    table = pd.DataFrame(rows).sort_values("mean", ascending=not maximize, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def paired_figures(table: pd.DataFrame, seeds: list[int]) -> dict[str, Any] | None:
    """Winner vs runner-up, by the paired bootstrap of their runs (the same seeds on both sides)."""
    from genre_lab.runs.paired import compare_groups  # deferred: the decoder brings torch

    winner, runner_up = table.iloc[0], table.iloc[1]
    if winner["seeds"] != len(seeds) or runner_up["seeds"] != len(seeds):
        log.warning("confirmation: a configuration lacks some seeds' runs; no paired comparison")
        return None
    paired = compare_groups([Path(r) for r in runner_up["runs"]], [Path(r) for r in winner["runs"]])
    row = paired.set_index("figure").loc["f1_micro"]
    return {"figure": "f1_micro (each run's own tuned rule, seeds pooled)", "winner": float(row["B"]),
            "runner_up": float(row["A"]), "difference": float(row["B - A"]),
            "interval_95": [float(row["95% low"]), float(row["95% high"])], "winner_ahead_share": float(row["B wins"])}


def write_confirmation(sweep_dir: Path, table: pd.DataFrame, paired: dict[str, Any] | None) -> dict[str, Any]:
    """``confirmation.csv`` / ``.md``, ``best/winner.yaml``; the ``confirmation`` entry of the results."""
    shown = table.drop(columns=["runs"])
    atomic_write_text(sweep_dir / CONFIRMATION, shown.to_csv(index=False))
    atomic_write_text(sweep_dir / "confirmation.md", to_markdown(shown, list(shown.columns)))
    print_table(shown.to_dict("records"), list(shown.columns), f"confirmation over seeds {seeds_of(shown)}")
    winner = table.iloc[0]
    entry = {"winner_trial": int(winner["trial"]), "winner_mean": float(winner["mean"]),
             "winner_params": winner["params"], "winner_runs": list(winner["runs"]),
             "winner_checkpoints": [str(RunLayout(Path(r)).best) for r in winner["runs"]],
             "runner_up_trial": int(table.iloc[1]["trial"]), "runner_up_mean": float(table.iloc[1]["mean"]),
             "margin": float(winner["mean"] - table.iloc[1]["mean"]), "paired": paired}
    (sweep_dir / "best").mkdir(exist_ok=True)
    atomic_write_text(sweep_dir / "best" / "winner.yaml", OmegaConf.to_yaml(OmegaConf.create(entry)))
    log.info("confirmation: trial %d wins (mean %.4f over %d seeds, %+.4f over trial %d); %s", entry["winner_trial"],
             entry["winner_mean"], int(winner["seeds"]), entry["margin"], entry["runner_up_trial"],
             sweep_dir / "best" / "winner.yaml")
    return entry


def seeds_of(table: pd.DataFrame) -> list[str]:
    return [c.split(" ", 1)[1] for c in table.columns if c.startswith("seed ")]
