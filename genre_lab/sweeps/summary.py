"""Hydra callback: at the end of every multirun, `sweep_summary.csv` / `.md` in the sweep directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genre_lab.io import atomic_write_text
from genre_lab.runs.table import find_runs, runs_table, to_markdown
from genre_lab.scoring.report import print_table
from genre_lab.scoring.seed_groups import seed_groups

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
        shown = whole_numbers(frame, ["trial", "epochs"])
        markdown = to_markdown(shown, columns)
        print_frame(shown, columns, f"sweep {sweep_dir} ({len(frame)} jobs, best first by {self.metric})")
        groups = seed_groups(frame, [self.metric, *[m for m in SEED_FIGURES if m != self.metric]])
        if not groups.empty and (groups.seeds > 1).any():  # e.g. -m seed=1,2,3: mean ± std of each config
            group_columns = ["overrides", "seeds", "seed_values",
                             *[c for c in groups.columns if c.startswith(self.metric)]]
            atomic_write_text(sweep_dir / "sweep_seeds.csv", groups.to_csv(index=False))
            markdown += "\nRuns that differ only in their seed (mean, sample std, 95% t-interval half-width):\n\n"
            markdown += to_markdown(groups, group_columns)
            print_frame(groups, group_columns, f"seed groups: mean, std and ±95% of {self.metric}")
        atomic_write_text(sweep_dir / "sweep_summary.md", markdown)


def whole_numbers(frame: Any, columns: list[str]) -> Any:
    """Counts as ``3``, not ``3.0000`` (pandas stores a count column with a missing value as floats)."""
    shown = frame.copy()
    for column in columns:
        if column in shown.columns:
            shown[column] = [str(int(v)) if pd.notna(v) else "" for v in shown[column]]
    return shown


def print_frame(frame: Any, columns: list[str], title: str) -> None:
    """A runs table in the terminal: the columns it has, through the one table printer."""
    print_table(frame.to_dict("records"), [c for c in columns if c in frame.columns], title, width=160)
