"""Soft targets for distillation: what the TF-IDF baseline believes about each training row.

The transformer then learns from ``(1 - w)·labels + w·teacher`` (``model.distill_weight`` = w): the baseline's
word-level evidence, which a 3-epoch encoder does not fully pick up (the two err on different movies: their
ensemble beats both). The baseline scores each row from a fit on the other folds (out of fold): fitted on a
row, logistic regression all but memorises its label, and its "soft" target is the hard one again. The
validation rows are never seen by it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from genre_lab.errors import require_int
from genre_lab.model.baseline import TfidfLogReg, check_settings

log = logging.getLogger(__name__)


class TfidfTeacher:
    """Out-of-fold TF-IDF + logistic-regression probabilities (``folds`` fits; the baseline's own settings)."""

    def __init__(self, folds: int = 5, C: float = 4.0, ngram_max: int = 2, min_df: int = 2,  # noqa: N803 (sklearn)
                 max_features: int | None = None, seed: int = 0) -> None:
        require_int(folds, "data.teacher.folds", 2, 5, maximum=50)
        require_int(seed, "data.teacher.seed", 0, 0)
        check_settings(C, ngram_max, min_df, max_features, prefix="data.teacher")
        self.folds, self.seed = int(folds), int(seed)
        self.settings = {"C": C, "ngram_max": ngram_max, "min_df": min_df, "max_features": max_features}

    def soft_targets(self, texts: Sequence[str], targets: np.ndarray, label_names: Sequence[str],
                     multi_label: bool, movie_ids: Sequence[str] = (), text_template: str | None = None) -> np.ndarray:
        """``[rows, genres]`` probabilities for ``texts``, each from the fit on the folds that leave it out (it fits
        on the texts themselves: the rows' ids and template need no check)."""
        from sklearn.model_selection import KFold, StratifiedKFold  # deferred: scikit-learn, distillation only

        texts = list(texts)
        if multi_label:
            folds = KFold(self.folds, shuffle=True, random_state=self.seed).split(texts)
        else:  # each fold keeps the genre shares, so no fit lacks a rare genre
            splitter = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
            folds = splitter.split(texts, targets.argmax(axis=1))
        soft = np.zeros(targets.shape, dtype=np.float32)
        for fit_rows, held_rows in folds:
            model = TfidfLogReg(label_names, multi_label, seed=self.seed, **self.settings)
            model.fit([texts[i] for i in fit_rows], targets[fit_rows])
            soft[held_rows] = model.predict_proba([texts[i] for i in held_rows])
        agree = float(targets[np.arange(len(soft)), soft.argmax(1)].mean())  # its top genre is a true one
        log.info("teacher: out-of-fold TF-IDF probabilities for %d training rows (%d folds; top-1 %.3f)",
                 len(texts), self.folds, agree)
        return soft
