"""Collect finished (and failed) run directories into one table: sweep summaries and `genre-lab compare`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import validation_rows
from genre_lab.scoring.figure_names import HEADLINE
from genre_lab.scoring.report import print_table
from genre_lab.scoring.seed_groups import config_id, seed_groups


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories (holding ``.hydra/``, and ``metrics.json`` or ``failed.json``) at or below ``paths``."""
    found: set[Path] = set()
    for root in map(Path, paths):
        for marker in (RunLayout(root).metrics.name, RunLayout(root).failed.name):
            candidates = [root / marker] if (root / marker).is_file() else list(root.rglob(marker))
            found.update(p.parent for p in candidates if RunLayout(p.parent).hydra.is_dir())
    return sorted(found)


def read_run(run: Path) -> dict[str, Any]:
    """One row: where, overrides, status, headline validation/test metrics, checkpoint."""
    layout = RunLayout(run)
    overrides_file = layout.overrides
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    # hydra.* and the Optuna sweeper's trial={…} are bookkeeping; the trial number gets its own column
    shown = [o for o in overrides or [] if "hydra." not in o and not o.startswith("trial=")]
    row: dict[str, Any] = {"run": str(run), "overrides": " ".join(shown)}
    config = layout.read_config()
    trial = config.get("trial")
    if isinstance(trial, dict) and "number" in trial:
        row["trial"] = int(trial["number"])
    if "seed" in config:
        row["seed"] = config["seed"]
    if layout.metrics.is_file():
        metrics = layout.read_metrics()
        # runs with one config_id differ only in their seed (genre_lab.scoring.seed_groups)
        row["config_id"] = metrics.get("config_id") or (config_id(config) if config else None)
        row["status"] = metrics.get("status", "ok")  # "pruned": an Optuna trial stopped early
        for stage in ("val", "test", "eval"):
            row.update({f"{stage}/{m}": metrics[f"{stage}/{m}"] for m in HEADLINE if f"{stage}/{m}" in metrics})
        row["epochs"] = metrics.get("epochs")
        row["checkpoint"] = metrics.get("best_checkpoint") or ""
        # which validation rows the figures are on: runs scored on others are not comparable (compare warns)
        row["val_rows"], row["val_set"] = validation_rows(layout.val_probs) or (None, None)
    else:
        row.update({"status": "failed", "error": failure_message(layout)})
    return row


def failure_message(layout: RunLayout) -> str:
    """The error a failed job recorded in its ``failed.json``; empty when the file cannot be read."""
    try:
        return str(json.loads(layout.failed.read_text()).get("error", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def runs_table(runs: Sequence[Path], sort_by: str = "val/f1_micro") -> pd.DataFrame:
    """All runs, best first by ``sort_by`` (failed runs and runs without the metric last)."""
    frame = pd.DataFrame([read_run(r) for r in runs])
    if len(frame) > 1:  # show what tells the runs apart, not the overrides they share
        lists = [o.split(" ") if o else [] for o in frame.overrides]
        shared = set.intersection(*map(set, lists))
        frame["overrides"] = [" ".join(o for o in items if o not in shared) for items in lists]
    if sort_by not in frame.columns:  # e.g. every job failed
        return frame
    return frame.sort_values(sort_by, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def to_markdown(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A GitHub-style table (without the optional `tabulate` dependency)."""
    cols = [c for c in columns if c in frame.columns]
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row[c]) for c in cols) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


def whole_numbers(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Counts as ``3``, not ``3.0000`` (pandas stores a count column with a missing value as floats)."""
    shown = frame.copy()
    for column in columns:
        if column in shown.columns:
            shown[column] = [str(int(v)) if pd.notna(v) else "" for v in shown[column]]
    return shown


def print_frame(frame: pd.DataFrame, columns: Sequence[str], title: str) -> None:
    """A runs table in the terminal: the columns it has, through the one table printer."""
    print_table(frame.to_dict("records"), [c for c in columns if c in frame.columns], title, width=160)


@dataclass
class RunsView:
    """A ranked runs table as compare and the sweep summary show it; the callers choose the files."""

    markdown: str  # the runs table
    groups: pd.DataFrame  # one row per config_id: its seeds, mean, std and ±95% of each figure
    groups_markdown: str
    several_seeds: bool  # some config ran with more than one seed


def show_runs(frame: pd.DataFrame, columns: Sequence[str], title: str, metric: str, figures: Sequence[str],
              counts: Sequence[str] = ()) -> RunsView:
    """Print ``frame`` (best first) and, for configs run with several seeds, their seed groups over ``metric``
    and ``figures``; the same tables as Markdown."""
    shown = whole_numbers(frame, counts)
    print_frame(shown, columns, title)
    groups = seed_groups(frame, [metric, *[m for m in figures if m != metric]])
    spread = [c for c in (metric, f"{metric} std", f"{metric} ±95%") if c in groups.columns]
    group_columns = ["config_id", "overrides", "seeds", "seed_values", *spread]
    several = groups[groups.seeds > 1] if not groups.empty else groups
    if not several.empty:
        print_frame(several, group_columns, f"runs that differ only in their seed: mean, std, ±95% ({metric} first)")
    return RunsView(to_markdown(shown, columns), groups,
                    to_markdown(groups, group_columns) if not groups.empty else "", not several.empty)
