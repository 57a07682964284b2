"""Disk in a long search: ``hydra.sweeper.keep_checkpoints=k`` keeps the checkpoint files of the best k trials.

Trials are ranked by their value (a pruned trial by the best value it reported). The others keep their
directory, per-epoch history, metrics and plots; their ``checkpoints/*.ckpt`` files are replaced by
``checkpoints/REMOVED.txt``, which `genre-lab eval/predict/export` quote when asked for that run. A file is only
removed from a directory whose ``metrics.json`` names the same trial (a path recorded by a sweep on another
machine is never trusted blindly).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from genre_lab.runs.layout import RunLayout

log = logging.getLogger(__name__)

def trial_score(trial: Any, maximize: bool) -> float | None:
    """A finished trial's value for ranking: its value when COMPLETE, its best report when PRUNED."""
    if trial.state == TrialState.COMPLETE:
        return float(trial.value)
    if trial.state == TrialState.PRUNED:
        reports = [v for v in trial.intermediate_values.values() if not math.isnan(v)]
        return (max if maximize else min)(reports) if reports else None
    return None


def owned_run_dir(trial: Any) -> Path | None:
    """The trial's run directory if it is here and its metrics.json names this trial."""
    out = trial.user_attrs.get("output_dir")
    if not out:
        return None
    try:
        number = RunLayout(out).read_metrics().get("trial")
    except (OSError, ValueError):
        return None
    return Path(out) if number == trial.number else None


def remove_checkpoints(run_dir: Path, why: str) -> int:
    """Delete ``run_dir/checkpoints/*.ckpt`` and leave a note saying why; returns the bytes freed."""
    layout = RunLayout(run_dir)
    files = sorted(layout.checkpoints.glob("*.ckpt"))
    if not files:
        return 0
    layout.removed_note.write_text(why + "\n")
    freed = 0
    for path in files:
        freed += path.stat().st_size
        path.unlink()
    return freed


def keep_best_checkpoints(study: Any, keep: int) -> int:
    """Remove the checkpoints of every finished trial outside the best ``keep``; returns the bytes freed."""
    maximize = study.direction.name == "MAXIMIZE"
    scored = [(s, t) for t in study.get_trials(deepcopy=False) if (s := trial_score(t, maximize)) is not None]
    scored.sort(key=lambda st: st[0], reverse=maximize)
    freed = 0
    for rank, (score, trial) in enumerate(scored[keep:], start=keep + 1):
        run_dir = owned_run_dir(trial)
        if run_dir is not None:
            freed += remove_checkpoints(run_dir, (
                f"Checkpoints removed by the sweeper (hydra.sweeper.keep_checkpoints={keep}): trial {trial.number} "
                f"ranked {rank} of {len(scored)} in study {study.study_name!r} ({score:.4g}). Its metrics, "
                "per-epoch history and plots are kept; retrain it with its overrides (.hydra/overrides.yaml)."))
    if freed:
        log.info("kept the checkpoints of the best %d trials; freed %.1f MB", keep, freed / 1e6)
    return freed
