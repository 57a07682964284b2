"""MovieData: a run's data without Lightning — tables, label space, each stage's rows, targets, label statistics
and token ids. Train, eval, the baseline and the teacher use it directly; ``GenreDataModule`` puts loaders on top.

CSV -> validated table -> sample -> split (here, no tokenizer needed) -> tokenize once (``tokenized``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

from genre_lab.backbones import load_tokenizer
from genre_lab.data.folds import check_fold_settings, fold_ids
from genre_lab.data.formats import split_folders
from genre_lab.data.labels import LabelSpace
from genre_lab.data.sampling import (
    check_split_support,
    iterative_split,
    sample_per_class,
    sampling_keys,
    split_keys,
    stratified_split,
)
from genre_lab.data.table import MovieTable, TableSpec, drop_genres, read_table
from genre_lab.data.token_cache import cached_tokenize
from genre_lab.data.token_rows import check_truncation
from genre_lab.data.tokens import TokenIds, TokenRows
from genre_lab.errors import GenreLabError, require_choice, require_int, require_number, require_positive

log = logging.getLogger(__name__)
FILE_KEYS = ("train_csv", "val_csv", "test_csv")
PHASES = ("read", "split", "tokens")


class Teacher(Protocol):
    """What the data asks of a distillation teacher (genre_lab.model.teacher: a model, so data/ only names the call
    it makes): soft targets for the training rows, each from a fit that left the row out."""

    def soft_targets(self, texts: Any, targets: np.ndarray, label_names: Any, multi_label: bool,
                     movie_ids: Any = (), text_template: str | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class LabelStats:
    """What the model is told about the training labels (its head's size, prior and class weights)."""

    space: LabelSpace
    prior: list[float]  # share of training-split rows carrying each genre
    rows: int  # rows of the training file
    rows_with_several_genres: int  # of them, rows with more than one genre (none: single-label data)
    source: str  # the training file, for messages

    def pos_weight(self) -> list[float]:
        """negatives / positives per genre on the training split (for BCE ``pos_weight``)."""
        prior = np.clip(np.asarray(self.prior), 1e-6, None)
        return ((1 - prior) / prior).tolist()


class TokenizedDataset(Dataset):
    """Token ids (unpadded) and, when labelled, multi-hot targets; for distillation, the teacher's soft targets."""

    def __init__(self, input_ids: TokenIds | TokenRows, targets: np.ndarray | None,
                 teacher: np.ndarray | None = None) -> None:
        self.input_ids = input_ids
        self.targets = targets
        self.teacher = teacher

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.input_ids[i]}
        if self.targets is not None:
            item["labels"] = self.targets[i]
        if self.teacher is not None:
            item["teacher"] = self.teacher[i]
        return item


@dataclass
class Split:
    """Rows of one stage: which rows of its table, and their token ids and targets (``dataset``); the movie ids
    (``movie_ids``) and texts stay in the table."""

    table: MovieTable
    rows: np.ndarray
    dataset: TokenizedDataset

    @property
    def movie_ids(self) -> list[str]:
        return [self.table.movie_ids[i] for i in self.rows]


def check_length_setting(max_length: Any) -> None:
    """A whole number of tokens, long enough for the special tokens and some text (the backbone's own
    limit is checked by ``backbones.check_max_length``)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise GenreLabError(f"data.max_length={max_length!r} must be a whole number of tokens, "
                            "e.g. data.max_length=128")
    if max_length < 8:
        raise GenreLabError(f"data.max_length={max_length} is too short (at least 8 tokens); use e.g. 128")


def check_data_settings(s: Mapping[str, Any]) -> None:
    """The one check of the data settings (``GenreDataModule``'s arguments), wherever the data is built."""
    for key in ("batch_size", "eval_batch_size", "global_batch_size"):
        if s[key] is not None:
            require_positive(s[key], f"data.{key}")
    require_choice(s["unseen_labels"], "data.unseen_labels", ("fail", "ignore"))
    require_choice(s["split"], "data.split", ("auto", "iterative", "combination"))
    check_length_setting(s["max_length"])
    check_truncation(s["truncation"])
    if not s["val_csv"]:
        require_number(s["val_size"], "data.val_size", lambda v: 0 < v < 1, "in (0, 1) (the validation share)",
                       "0.2, or give data.val_csv=<file>")
    require_int(s["num_workers"], "data.num_workers", 0, 4)
    if s["pad_multiple"] is not None:
        require_int(s["pad_multiple"], "data.pad_multiple", 1, 8)
    if s["label_column"] is None:
        raise GenreLabError("data.label_column=null: training needs the column holding the genres, "
                            "e.g. data.label_column=genre")
    check_fold_settings(s.get("folds"), s.get("fold"))


class MovieData:
    """The data a run is trained and scored on, from its settings (``GenreDataModule``'s arguments, checked here).

    Validation is ``val_csv`` when given, else a seeded stratified split of ``val_size`` of the (sampled) training
    rows; multi-label rows are stratified by label combination (see sampling.py). Tables are read on first use.
    """

    def __init__(self, settings: Mapping[str, Any], teacher: Teacher | None = None) -> None:
        check_data_settings(settings)
        # Absolute paths (and so in the checkpoint): eval/predict may run from another directory.
        self.settings = split_folders({**settings, **{k: str(Path(settings[k]).resolve())
                                                      for k in FILE_KEYS if settings[k]}})
        self.spec = TableSpec.from_settings(self.settings)
        self.teacher = teacher
        self.splits: dict[str, Split] = {}  # filled by ``tokenized``
        self._read: dict[str, MovieTable] = {}
        self._ids: dict[Path, TokenIds] = {}
        self.seconds: dict[str, float] = {}  # time spent per set-up phase (PHASES)

    @property
    def shuffle_seed(self) -> int:
        """Seed of each epoch's batch order: the run's seed; ``seed`` fixes the split and the sampling."""
        s = self.settings
        return s["seed"] if s["shuffle_seed"] is None else s["shuffle_seed"]

    @property
    def eval_batch(self) -> int:
        """Batch size for validation/test and inference: ``eval_batch_size``, else the training batch."""
        return self.settings["eval_batch_size"] or self.settings["batch_size"]

    # -- tables and labels -------------------------------------------------------------------
    @cached_property
    def train_table(self) -> MovieTable:
        with self.timed("read"):
            return read_table(self.settings["train_csv"], self.spec)

    @cached_property
    def label_space(self) -> LabelSpace:
        """All genres of the training file (before sampling, so sampling never drops a genre)."""
        rows = self.train_table.labels
        genres = sorted({name for row in rows for name in row})
        if len(genres) < 2:
            raise GenreLabError(
                f"{self.settings['train_csv']}: every row has the genre {genres[0]!r}, and a classifier needs at "
                f"least 2 genres. Add rows of other genres, or check that "
                f"data.label_column={self.spec.label_column!r} is the genre column."
            )
        return LabelSpace.from_rows(rows, self.spec.multi_label)

    @cached_property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.settings["tokenizer"])

    def label_stats(self) -> LabelStats:
        """The training labels as the model needs them (no tokenizing)."""
        table, rows = self.stage_rows["train"]
        prior = self.label_space.encode([table.labels[i] for i in rows]).mean(axis=0).tolist()
        labels = self.train_table.labels
        return LabelStats(self.label_space, prior, len(labels), sum(len(row) > 1 for row in labels),
                          self.settings["train_csv"])

    def _read_labelled(self, path: str, require_labels: bool) -> MovieTable:
        """A validation/test CSV, its genres spelled as in training; genres unseen in training fail or are
        dropped (``data.unseen_labels=ignore``)."""
        table = read_table(path, self.spec, require_labels=require_labels)
        if table.labels is None:
            return table
        table.labels, unknown = self.label_space.conform(table.labels)
        if not unknown:
            return table
        if self.settings["unseen_labels"] == "ignore":
            return drop_genres(table, unknown, "not in the training data; data.unseen_labels=ignore")
        raise GenreLabError(
            f"{path}: genre(s) {unknown} do not occur in the training data {self.settings['train_csv']}; "
            f"known genres: {list(self.label_space.names)}. Fix the labels, add training rows, or set "
            "data.unseen_labels=ignore to drop those genres (and rows left without a genre)."
        )

    def _table(self, key: str) -> MovieTable:
        """The table of ``train_csv``/``val_csv``/``test_csv``, read and validated once."""
        if key not in self._read:
            if key == "train_csv":
                self._read[key] = self.train_table
            else:
                with self.timed("read"):
                    self._read[key] = self._read_labelled(self.settings[key], require_labels=key == "val_csv")
        return self._read[key]

    def tables(self) -> list[MovieTable]:
        return [self._table(key) for key in FILE_KEYS if self.settings[key]]

    # -- rows of each stage -----------------------------------------------------------------
    @property
    def split_method(self) -> str:
        """``data.split``: ``auto`` is iterative stratification for multi-label data (every genre keeps its
        share), and per-genre strata (``combination``, exact per genre) for single-label data."""
        if self.settings["split"] != "auto":
            return self.settings["split"]
        return "iterative" if self.settings["multi_label"] else "combination"

    def _train_val_rows(self) -> tuple[np.ndarray, np.ndarray | None]:
        s, labels = self.settings, self.train_table.labels
        rows = np.arange(len(labels))
        sample = {k: v for k, v in (s["sample"] or {}).items() if v is not None}
        if sample:
            rows = sample_per_class(sampling_keys(labels), seed=s["seed"], **sample)
            log.info("sampled %d of %d training rows per class (%s)", len(rows), len(labels), sample)
        if s["val_csv"]:
            return rows, None
        kept = [labels[i] for i in rows]
        if self.split_method == "iterative":
            check_split_support(kept)
            train, val = iterative_split(self.label_space.encode(kept), s["val_size"], seed=s["seed"])
        else:
            train, val = stratified_split(split_keys(kept, s["val_size"]), s["val_size"], seed=s["seed"])
        return rows[train], rows[val]

    def _fold_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A fold run's training rows (the other folds of ``rows``) and validation rows (its fold)."""
        s, labels = self.settings, [self.train_table.labels[i] for i in rows]
        targets = self.label_space.encode(labels) if self.split_method == "iterative" else None
        ids = fold_ids(labels, s["folds"], self.split_method, s["seed"], targets)
        log.info("fold %d of %d: training on %d rows, validating on %d", s["fold"], s["folds"],
                 int((ids != s["fold"]).sum()), int((ids == s["fold"]).sum()))
        return rows[ids != s["fold"]], rows[ids == s["fold"]]

    @cached_property
    def stage_rows(self) -> dict[str, tuple[MovieTable, np.ndarray]]:
        """Each stage's table and rows: read, checked, sampled and split, not tokenized (what a model that
        reads texts itself, such as the TF-IDF baseline, trains on). A fold run (``folds``) trains on the other
        folds, validates on its own and tests on the held-out rows (the validation file or split)."""
        self.train_table  # noqa: B018 (read first: its time is the read's, not the split's)
        with self.timed("split"):
            train_rows, val_rows = self._train_val_rows()
        parts = {"train": (self.train_table, train_rows)}
        if val_rows is None:
            val_table = self._table("val_csv")
            parts["val"] = (val_table, np.arange(len(val_table)))
        else:
            parts["val"] = (self.train_table, val_rows)
        if self.settings.get("folds"):
            if self.settings["test_csv"]:
                raise GenreLabError(
                    f"data.test_csv with data.folds={self.settings['folds']}: a fold run's test rows are the held-out "
                    "rows (data.val_csv or the validation split); leave data.test_csv out (or the dataset's test "
                    "split: data.test_csv=null) and score that file afterwards with genre-lab eval")
            with self.timed("split"):
                train_rows, fold_rows = self._fold_rows(train_rows)
            return {"train": (self.train_table, train_rows), "val": (self.train_table, fold_rows),
                    "test": parts["val"]}
        if self.settings["test_csv"]:
            test_table = self._table("test_csv")
            parts["test"] = (test_table, np.arange(len(test_table)))
        return parts

    def texts_and_targets(self, stage: str) -> tuple[list[str], np.ndarray | None, list[str]]:
        """A stage's model texts, multi-hot targets (None for an unlabelled test file) and movie ids."""
        table, rows = self.stage_rows[stage]
        targets = None if table.labels is None else self.label_space.encode([table.labels[i] for i in rows])
        return [table.texts[i] for i in rows], targets, [table.movie_ids[i] for i in rows]

    def has_labels(self, stage: str) -> bool:
        return stage in self.stage_rows and self.stage_rows[stage][0].labels is not None

    # -- tokens -----------------------------------------------------------------------------
    def token_ids(self, table: MovieTable) -> TokenIds:
        """Every row of ``table`` tokenized, once per process; from the on-disk cache when another job
        or rank made it (``token_cache_dir``; null: no disk cache)."""
        if table.path not in self._ids:
            s = self.settings
            with self.timed("tokens"):
                self._ids[table.path] = cached_tokenize(table.texts, table.path.name, self.tokenizer,
                                                        s["max_length"], s["token_cache_dir"], s["truncation"])
        return self._ids[table.path]

    def tokenized(self) -> dict[str, Split]:
        """Every stage's rows tokenized (and, for training, the teacher's soft targets) — once."""
        if not self.splits:
            for name, (table, rows) in self.stage_rows.items():
                self.splits[name] = Split(table, rows, self._dataset(table, rows, teach=name == "train"))
            log.info("data set-up: %s rows read and checked in %.1f s, split in %.1f s, tokens in %.1f s",
                     f"{sum(len(t) for t in self.tables()):,}", *(self.seconds.get(k, 0.0) for k in PHASES))
        return self.splits

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time spent inside to ``phase`` (reported once the data is ready)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def _dataset(self, table: MovieTable, rows: np.ndarray, teach: bool = False) -> TokenizedDataset:
        ids = TokenRows(self.token_ids(table), rows)
        targets = soft = None
        if table.labels is not None:
            targets = self.label_space.encode([table.labels[i] for i in rows])
        if teach and self.teacher is not None:
            soft = self.teacher.soft_targets([table.texts[i] for i in rows], targets, self.label_space.names,
                                             self.label_space.multi_label, [table.movie_ids[i] for i in rows],
                                             self.spec.text_template)
        return TokenizedDataset(ids, targets, soft)

    def describe(self) -> str:
        sizes = ", ".join(f"{k}={len(rows)}" for k, (_, rows) in self.stage_rows.items())
        return f"{Path(self.settings['train_csv']).name}: {len(self.label_space)} genres; rows {sizes}"
