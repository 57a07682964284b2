"""The classical baseline: TF-IDF word n-grams + logistic regression (scikit-learn does the modelling).

Single-label data: one multinomial logistic regression (softmax probabilities over the genres); multi-label
data: one binary logistic regression per genre (one-vs-rest, sigmoid probabilities). It reads the same model
texts as the transformer (the datamodule's template, sampling and split) and gives probabilities in the label
space's column order, so thresholds, metrics, plots, ensembles and comparisons treat it like any run.

Saved with skops (``model.skops``), which loads only the scikit-learn and NumPy types it lists as trusted, not
arbitrary pickled code; loading refuses a file holding anything else.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_lab.errors import GenreLabError, is_number, require_int
from genre_lab.io import atomic_target


def check_settings(C: Any, ngram_max: Any, min_df: Any, max_features: Any,  # noqa: N803 (sklearn's C)
                   prefix: str = "model") -> None:
    """GenreLabError naming ``<prefix>.<key>`` (the baseline's ``model.*``, the teacher's ``data.teacher.*``)."""
    if not is_number(C) or C <= 0:
        raise GenreLabError(f"{prefix}.C={C!r} must be a number > 0 (inverse regularisation strength), "
                            f"e.g. {prefix}.C=4")
    require_int(ngram_max, f"{prefix}.ngram_max", 1, 2)
    require_int(min_df, f"{prefix}.min_df", 1, 2)
    if max_features is not None:
        require_int(max_features, f"{prefix}.max_features", 1, 200000)


class TfidfLogReg:
    """TF-IDF (word 1..``ngram_max``-grams, sublinear tf, ``min_df``) + logistic regression (``C``)."""

    fits_texts = True  # genre-lab train fits it on the datamodule's texts, without Lightning (train_baseline.py)

    def __init__(self, label_names: Sequence[str], multi_label: bool, C: float = 4.0, ngram_max: int = 2,  # noqa: N803
                 min_df: int = 2, max_features: int | None = None, max_iter: int = 2000, seed: int = 0) -> None:
        check_settings(C, ngram_max, min_df, max_features)
        self.label_names, self.multi_label = list(label_names), bool(multi_label)
        self.settings = {"C": float(C), "ngram_max": int(ngram_max), "min_df": int(min_df),
                         "max_features": max_features, "max_iter": int(max_iter), "seed": int(seed)}
        self.pipeline: Any = None
        self.run: dict[str, Any] = {}  # set by load: the run's decision rule and data settings

    def _build(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer  # deferred: scikit-learn, baseline runs only
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline

        s = self.settings
        vectorizer = TfidfVectorizer(ngram_range=(1, s["ngram_max"]), min_df=s["min_df"], sublinear_tf=True,
                                     max_features=s["max_features"], strip_accents="unicode")
        classifier = LogisticRegression(C=s["C"], max_iter=s["max_iter"], random_state=s["seed"])
        return make_pipeline(vectorizer, OneVsRestClassifier(classifier) if self.multi_label else classifier)

    def fit(self, texts: Sequence[str], targets: np.ndarray) -> TfidfLogReg:
        self.pipeline = self._build()
        labels = targets if self.multi_label else targets.argmax(axis=1)
        try:
            self.pipeline.fit(list(texts), labels)
        except ValueError as err:  # e.g. min_df above every term's document count
            raise GenreLabError(f"the TF-IDF baseline could not be fitted: {err}. Lower model.min_df or check the "
                                "texts (data.text_template)") from None
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[rows, genres]`` probabilities in the label space's order."""
        if self.pipeline is None:
            raise RuntimeError("fit() first")
        probs = self.pipeline.predict_proba(list(texts))
        if self.multi_label:
            return probs.astype(np.float32)
        full = np.zeros((len(probs), len(self.label_names)), dtype=np.float32)  # a class absent from training: 0
        full[:, self.pipeline.classes_] = probs
        return full

    def save(self, path: str | Path, run: dict[str, Any]) -> Path:
        """The fitted pipeline and ``run``: what eval and predict need besides it (decision rule, data settings)."""
        import skops.io  # deferred: baseline runs only

        with atomic_target(path) as tmp:
            skops.io.dump({"pipeline": self.pipeline, "label_names": self.label_names,
                           "multi_label": self.multi_label, "settings": self.settings, "run": run}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TfidfLogReg:
        import skops.io  # deferred: as in save

        try:
            untrusted = skops.io.get_untrusted_types(file=path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # not a skops file at all
            raise GenreLabError(f"{path}: not a readable genre_lab baseline model ({err})") from None
        if untrusted:
            raise GenreLabError(f"{path} holds types genre_lab does not load ({untrusted[:5]}): it was not written "
                                "by genre-lab train model=tfidf_lr; refusing to load it")
        saved = skops.io.load(path)
        model = cls(saved["label_names"], saved["multi_label"], **saved["settings"])
        model.pipeline, model.run = saved["pipeline"], saved.get("run", {})
        return model
