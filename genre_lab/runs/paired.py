"""Two finished runs, paired on the validation rows both were scored on, for ``compare --paired``: the bootstrap
itself is scoring's (genre_lab.scoring.paired)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genre_lab.errors import GenreLabError, require_int
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.paired import RowCounts, paired_bootstrap, stacked


def run_counts(run: Path) -> tuple[StoredProbs, Decoder]:
    """A finished run's stored validation rows and the rule it decides with."""
    layout = RunLayout(run)
    if not layout.metrics.is_file():
        raise GenreLabError(f"{run} is not a finished run (no metrics.json): --paired takes two run directories")
    decoder = layout.read_metrics().get("decoder")
    return StoredProbs.load(layout.val_probs), Decoder(**decoder) if decoder else Decoder()


def compare_paired(run_a: Path, run_b: Path, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``paired_bootstrap`` of two run directories, aligned on their movie ids."""
    return compare_groups([run_a], [run_b], resamples, seed)


def compare_groups(runs_a: list[Path], runs_b: list[Path], resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``paired_bootstrap`` of two configurations, each trained with the same seeds (``runs_a[i]`` and
    ``runs_b[i]`` share seed i), every run aligned on the first run's movie ids."""
    require_int(resamples, "--resamples", 1000, 2000)
    if len(runs_a) != len(runs_b) or not runs_a:
        raise GenreLabError(f"a paired comparison needs the same seeds on both sides; got {len(runs_a)} and "
                            f"{len(runs_b)} runs")
    reference = run_counts(runs_b[0])[0]
    sides = []
    for runs in (runs_a, runs_b):
        counts = []
        for run in runs:
            stored, rule = run_counts(run)
            stored = stored.aligned_to(reference, (str(run), str(runs_b[0])))
            counts.append(RowCounts.of(stored.probs, stored.targets, rule.decide(stored.probs)))
        sides.append(stacked(counts))
    return paired_bootstrap(*sides, resamples=resamples, seed=seed, blocks=len(runs_a))
