"""Two finished runs, paired on the validation rows both were scored on, for ``compare --paired``: the bootstrap
itself is scoring's (genre_lab.scoring.paired)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genre_lab.errors import GenreLabError, require_int
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.paired import RowCounts, paired_bootstrap


def run_counts(run: Path) -> tuple[StoredProbs, Decoder]:
    """A finished run's stored validation rows and the rule it decides with."""
    layout = RunLayout(run)
    if not layout.metrics.is_file():
        raise GenreLabError(f"{run} is not a finished run (no metrics.json): --paired takes two run directories")
    decoder = layout.read_metrics().get("decoder")
    return StoredProbs.load(layout.val_probs), Decoder(**decoder) if decoder else Decoder()


def compare_paired(run_a: Path, run_b: Path, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``paired_bootstrap`` of two run directories, aligned on their movie ids."""
    require_int(resamples, "--resamples", 1000, 2000)
    (stored_a, rule_a), (stored_b, rule_b) = run_counts(run_a), run_counts(run_b)
    stored_a = stored_a.aligned_to(stored_b, (str(run_a), str(run_b)))
    counts = [RowCounts.of(s.probs, s.targets, rule.decide(s.probs)) for s, rule in
              ((stored_a, rule_a), (stored_b, rule_b))]
    return paired_bootstrap(*counts, resamples=resamples, seed=seed)
