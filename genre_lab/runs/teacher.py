"""A finished run as a distillation teacher (``data/teacher=run data.teacher.run_dir=<run>``): its out-of-fold
probabilities (``oof_probs.npz``, written by a cross-validation) for the student's training rows.

Out of fold only: a model's probabilities on rows it trained on are near its hard labels, so a student would learn
the labels again. The teacher must have scored the student's rows (same file, split and sampling: matched by movie
id, with the same genres on them), with the same genres in the same order and the same text template.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_lab.errors import GenreLabError
from genre_lab.runs.finished import locate
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs

log = logging.getLogger(__name__)


class OutOfFoldTeacher:
    """The out-of-fold probabilities of the run at ``run_dir`` (a cross-validation, or an ensemble of them)."""

    def __init__(self, run_dir: str | None = None) -> None:
        if not run_dir:
            raise GenreLabError("data/teacher=run needs the teacher: data.teacher.run_dir=<a cross-validation run "
                                "directory> (genre-lab train … data.folds=5 makes one)")
        self.run_dir = Path(str(run_dir)).expanduser().resolve()
        if not self.run_dir.is_dir():
            raise GenreLabError(f"data.teacher.run_dir={run_dir}: no such run directory")
        if not RunLayout(self.run_dir).oof_probs.is_file():
            raise GenreLabError(
                f"data.teacher.run_dir={self.run_dir} has no oof_probs.npz: its probabilities for its own training "
                "rows are in-sample (near the hard labels), which would teach the student nothing. Give a "
                "cross-validation run (genre-lab train … data.folds=5), whose every training row was scored by a "
                "model that never saw it")

    def soft_targets(self, texts: Sequence[str], targets: np.ndarray, label_names: Sequence[str],
                     multi_label: bool, movie_ids: Sequence[str] = (), text_template: str | None = None) -> np.ndarray:
        """``[rows, genres]``: the teacher's out-of-fold probabilities of the rows ``movie_ids``, in that order
        (single-label students get each row normalised to sum 1, as a softmax target)."""
        stored = StoredProbs.load(RunLayout(self.run_dir).oof_probs)
        self.check_match(stored, label_names, multi_label, text_template)
        position = {str(movie): i for i, movie in enumerate(stored.movie_ids)}
        missing = [m for m in map(str, movie_ids) if m not in position]
        if missing or not len(movie_ids):
            raise GenreLabError(
                f"data.teacher.run_dir={self.run_dir}: {len(missing)} of the {len(movie_ids)} training rows have no "
                f"out-of-fold probability there (e.g. ids {missing[:5]}); the teacher must be cross-validated on the "
                "same training file, split and sampling (data.val_size, data.seed, data.sample) as the student")
        order = np.array([position[str(m)] for m in movie_ids])
        if not np.array_equal(stored.targets[order], np.asarray(targets, dtype=stored.targets.dtype)):
            raise GenreLabError(f"data.teacher.run_dir={self.run_dir}: the same movie ids carry other genres there; "
                                "the teacher was trained on another file")
        soft = stored.probs[order].astype(np.float32)
        if not multi_label:
            soft = soft / np.clip(soft.sum(axis=1, keepdims=True), 1e-12, None)
        agree = float(np.asarray(targets)[np.arange(len(soft)), soft.argmax(1)].mean())
        log.info("teacher: out-of-fold probabilities of %s for %d training rows (top-1 %.3f)", self.run_dir,
                 len(soft), agree)
        return soft

    def check_match(self, stored: StoredProbs, label_names: Sequence[str], multi_label: bool,
                    text_template: str | None) -> None:
        """The teacher's genres (in order), label kind and text template are the student's."""
        spec: Any = locate(run_dir=self.run_dir).spec
        checks = [("genres", list(label_names), list(stored.labels)),
                  ("data.multi_label", multi_label, bool(spec.multi_label))]
        if text_template is not None:
            checks.append(("data.text_template", text_template, spec.text_template))
        differences = [check for check in checks if check[1] != check[2]]
        if differences:
            what, ours, theirs = differences[0]
            verb = "differ" if what == "genres" else "differs"
            raise GenreLabError(f"data.teacher.run_dir={self.run_dir}: its {what} {verb} from the student's "
                                f"({theirs!r} vs {ours!r}); a teacher's probabilities are read genre by genre for the "
                                "same texts")
