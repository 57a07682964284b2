"""Hydra callback: at the end of every multirun, `sweep_summary.csv` / `.md` in the sweep directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre_lab.io import atomic_write_text
from genre_lab.runs.table import find_runs, runs_table, show_runs

log = logging.getLogger(__name__)
# summarised over seeds besides the sweep's metric (sweep_seeds.csv)
SEED_FIGURES = ("val/f1_micro", "val/f1_macro", "val/top1_accuracy")


class SweepSummary(Callback):
    """One row per job (overrides, status, best metrics, checkpoint), best first, printed and written."""

    def __init__(self, metric: str = "val/f1_micro") -> None:
        self.metric = metric

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = find_runs([sweep_dir])
        if not runs:
            log.warning("sweep summary: no job results under %s", sweep_dir)
            return
        frame = runs_table(runs, self.metric)
        atomic_write_text(sweep_dir / "sweep_summary.csv", frame.to_csv(index=False))
        columns = ["trial", "overrides", "status", "epochs", self.metric,
                   *[c for c in frame.columns if c.startswith("test/")][:1], "checkpoint", "error"]
        view = show_runs(frame, columns, f"sweep {sweep_dir} ({len(frame)} jobs, best first by {self.metric})",
                         self.metric, SEED_FIGURES, counts=["trial", "epochs"])
        markdown = view.markdown
        if view.several_seeds:  # e.g. -m seed=1,2,3: mean ± std of each config
            atomic_write_text(sweep_dir / "sweep_seeds.csv", view.groups.to_csv(index=False))
            markdown += "\nRuns that differ only in their seed (mean, sample std, 95% t-interval half-width):\n\n"
            markdown += view.groups_markdown
        atomic_write_text(sweep_dir / "sweep_summary.md", markdown + search_notes(sweep_dir))


def search_notes(sweep_dir: Path) -> str:
    """Lines on how an Optuna search went (``optimization_results.yaml``): what ended it when its time budget did,
    which trials retried which, and the study's trials still RUNNING."""
    results = sweep_dir / "optimization_results.yaml"
    search = yaml.safe_load(results.read_text()) if results.is_file() else None
    if not isinstance(search, dict):
        return ""
    lines = [f"Study {search.get('study_name')}: " + ", ".join(f"{n} {s}" for s, n in search["states"].items())
             + " trials."] if search.get("states") else []
    if search.get("ended_by") == "timeout":
        lines.append(f"The time budget (hydra.sweeper.timeout={search['timeout']:g} s), not n_trials, ended this "
                     f"search after {search['trials_launched']} trials.")
    lines += [f"Trial {r['trial']} ({r['state']}) retried trial {r['retry_of']} (its process died or was stopped) "
              f"in its directory {r['dir']}." for r in search.get("retries", [])]
    if search.get("confirmation"):
        lines.append(confirmation_line(search["confirmation"]))
    if search.get("running"):
        lines.append(f"Still RUNNING in the study: trials {search['running']} (another sweeper's, or found stale "
                     "by the heartbeat of the next sweeper on the study).")
    for line in lines:
        print(line)
    return "".join(f"\n{line}\n" for line in lines)


def confirmation_line(entry: dict[str, Any]) -> str:
    """What the confirmation runs said: the winner, its margin, and how sure the paired bootstrap is."""
    line = (f"Confirmed over {len(entry['winner_runs'])} seeds: trial {entry['winner_trial']} wins with a mean of "
            f"{entry['winner_mean']:.4f}, {entry['margin']:+.4f} over trial {entry['runner_up_trial']}")
    paired = entry.get("paired")
    if paired:
        low, high = paired["interval_95"]
        line += (f"; paired bootstrap of micro-F1: {paired['difference']:+.4f} (95% {low:+.4f} to {high:+.4f}), "
                 f"ahead in {paired['winner_ahead_share']:.0%} of the draws")
    return line + " (best/winner.yaml, confirmation.md)."
