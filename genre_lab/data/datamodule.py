"""GenreDataModule: CSV -> validated table -> sample -> split -> tokenize once -> padded batches."""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from genre_lab.backbones import load_tokenizer
from genre_lab.data.labels import LabelSpace
from genre_lab.data.samplers import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler
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
from genre_lab.data.tokens import TokenIds, check_truncation, make_collator
from genre_lab.errors import GenreLabError, require_choice, require_int, require_number, require_positive

log = logging.getLogger(__name__)


def check_length_setting(max_length: Any) -> None:
    """A whole number of tokens, long enough for the special tokens and some text (the backbone's own
    limit is checked by ``backbones.check_max_length``)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise GenreLabError(f"data.max_length={max_length!r} must be a whole number of tokens, "
                            "e.g. data.max_length=128")
    if max_length < 8:
        raise GenreLabError(f"data.max_length={max_length} is too short (at least 8 tokens); use e.g. 128")


class Teacher(Protocol):
    """What the datamodule asks of a distillation teacher (genre_lab.model.teacher: a model, so data/ only names
    the call it makes): soft targets for the training rows, each from a fit that left the row out."""

    def soft_targets(self, texts: Any, targets: np.ndarray, label_names: Any, multi_label: bool) -> np.ndarray: ...


class TokenizedDataset(Dataset):
    """Token ids (unpadded) and, when labelled, multi-hot targets; for distillation, the teacher's soft targets."""

    def __init__(self, input_ids: TokenIds, targets: np.ndarray | None, teacher: np.ndarray | None = None) -> None:
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


class GenreDataModule(pl.LightningDataModule):
    """Movie CSVs -> train/val/(test) dataloaders with dynamic padding.

    Validation is ``val_csv`` when given, else a seeded stratified split of ``val_size`` of the
    (sampled) training rows; multi-label rows are stratified by label combination (see sampling.py).
    ``batch_size`` is per device; ``global_batch_size`` (when set) fixes the effective batch instead and
    the per-device batch follows from the device count and gradient accumulation (``fit_global_batch``).
    """

    def __init__(
        self,
        train_csv: str,
        tokenizer: str,
        val_csv: str | None = None,
        test_csv: str | None = None,
        text_template: str = TableSpec.text_template,
        label_column: str = TableSpec.label_column,
        multi_label: bool = TableSpec.multi_label,
        label_sep: str = TableSpec.label_sep,
        id_column: str | None = TableSpec.id_column,
        sample: dict[str, Any] | None = None,
        val_size: float = 0.2,
        split: str = "auto",
        seed: int = 42,
        shuffle_seed: int | None = None,
        max_length: int = 128,
        truncation: str = "head",
        pad_to_max_length: bool = False,
        batch_size: int = 32,
        global_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        length_grouping: bool = True,
        pad_multiple: int | None = None,
        token_cache_dir: str | None = None,
        empty_text: str = TableSpec.empty_text,
        encoding_errors: str = TableSpec.encoding_errors,
        unseen_labels: str = "fail",
        teacher: Teacher | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                           ("global_batch_size", global_batch_size)):
            if value is not None:
                require_positive(value, f"data.{key}")
        require_choice(unseen_labels, "data.unseen_labels", ("fail", "ignore"))
        require_choice(split, "data.split", ("auto", "iterative", "combination"))
        check_length_setting(max_length)
        check_truncation(truncation)
        if not val_csv:
            require_number(val_size, "data.val_size", lambda v: 0 < v < 1, "in (0, 1) (the validation share)",
                           "0.2, or give data.val_csv=<file>")
        require_int(num_workers, "data.num_workers", 0, 4)
        if pad_multiple is not None:
            require_int(pad_multiple, "data.pad_multiple", 1, 8)
        if label_column is None:
            raise GenreLabError("data.label_column=null: training needs the column holding the genres, "
                                "e.g. data.label_column=genre")
        # the teacher's settings are in the run's config; eval and predict rebuild the data without it
        self.save_hyperparameters(logger=False, ignore=["teacher"])
        self.teacher = teacher
        # Absolute paths in the checkpoint: eval/predict may run from another directory.
        for key in ("train_csv", "val_csv", "test_csv"):
            if self.hparams[key]:
                self.hparams[key] = str(Path(self.hparams[key]).resolve())
        self.spec = TableSpec.from_settings(self.hparams)
        self.splits: dict[str, Split] = {}

    @property
    def shuffle_seed(self) -> int:
        """Seed of each epoch's batch order: the run's seed; ``seed`` fixes the split and the sampling."""
        return self.hparams.seed if self.hparams.shuffle_seed is None else self.hparams.shuffle_seed

    # -- tables and labels -------------------------------------------------------------------
    @cached_property
    def train_table(self) -> MovieTable:
        return read_table(self.hparams.train_csv, self.spec)

    @cached_property
    def label_space(self) -> LabelSpace:
        """All genres of the training file (before sampling, so sampling never drops a genre)."""
        rows = self.train_table.labels
        genres = sorted({name for row in rows for name in row})
        if len(genres) < 2:
            raise GenreLabError(
                f"{self.hparams.train_csv}: every row has the genre {genres[0]!r}, and a classifier needs at least "
                f"2 genres. Add rows of other genres, or check that data.label_column={self.spec.label_column!r} "
                "is the genre column."
            )
        return LabelSpace.from_rows(rows, self.spec.multi_label)

    @cached_property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.hparams.tokenizer)

    def _read_labelled(self, path: str, require_labels: bool) -> MovieTable:
        """A validation/test CSV, its genres spelled as in training; genres unseen in training fail or are
        dropped (``data.unseen_labels=ignore``)."""
        table = read_table(path, self.spec, require_labels=require_labels)
        if table.labels is None:
            return table
        table.labels, unknown = self.label_space.conform(table.labels)
        if not unknown:
            return table
        if self.hparams.unseen_labels == "ignore":
            return drop_genres(table, unknown, "not in the training data; data.unseen_labels=ignore")
        raise GenreLabError(
            f"{path}: genre(s) {unknown} do not occur in the training data {self.hparams.train_csv}; "
            f"known genres: {list(self.label_space.names)}. Fix the labels, add training rows, or set "
            "data.unseen_labels=ignore to drop those genres (and rows left without a genre)."
        )

    def _train_val_rows(self) -> tuple[np.ndarray, np.ndarray | None]:
        labels = self.train_table.labels
        rows = np.arange(len(labels))
        sample = {k: v for k, v in (self.hparams.sample or {}).items() if v is not None}
        if sample:
            rows = sample_per_class(sampling_keys(labels), seed=self.hparams.seed, **sample)
            log.info("sampled %d of %d training rows per class (%s)", len(rows), len(labels), sample)
        if self.hparams.val_csv:
            return rows, None
        kept = [labels[i] for i in rows]
        if self.split_method == "iterative":
            check_split_support(kept)
            train, val = iterative_split(self.label_space.encode(kept), self.hparams.val_size, seed=self.hparams.seed)
        else:
            train, val = stratified_split(split_keys(kept, self.hparams.val_size), self.hparams.val_size,
                                          seed=self.hparams.seed)
        return rows[train], rows[val]

    @property
    def split_method(self) -> str:
        """``data.split``: ``auto`` is iterative stratification for multi-label data (every genre keeps its
        share), and per-genre strata (``combination``, exact per genre) for single-label data."""
        if self.hparams.split != "auto":
            return self.hparams.split
        return "iterative" if self.hparams.multi_label else "combination"

    # -- Lightning hooks -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Read, sample, split and tokenize every stage's rows — once, whatever stage asks first."""
        if self.splits:
            return
        for name, (table, rows) in self.stage_rows.items():
            self.splits[name] = Split(table, rows, self._dataset(table, rows, teach=name == "train"))

    @cached_property
    def stage_rows(self) -> dict[str, tuple[MovieTable, np.ndarray]]:
        """Each stage's table and rows: read, checked, sampled and split, not tokenized (what a model that
        reads texts itself, such as the TF-IDF baseline, trains on)."""
        train_rows, val_rows = self._train_val_rows()
        parts = {"train": (self.train_table, train_rows)}
        if val_rows is None:
            val_table = self._table("val_csv")
            parts["val"] = (val_table, np.arange(len(val_table)))
        else:
            parts["val"] = (self.train_table, val_rows)
        if self.hparams.test_csv:
            test_table = self._table("test_csv")
            parts["test"] = (test_table, np.arange(len(test_table)))
        return parts

    def texts_and_targets(self, stage: str) -> tuple[list[str], np.ndarray | None, list[str]]:
        """A stage's model texts, multi-hot targets (None for an unlabelled test file) and movie ids."""
        table, rows = self.stage_rows[stage]
        targets = None if table.labels is None else self.label_space.encode([table.labels[i] for i in rows])
        return [table.texts[i] for i in rows], targets, [table.movie_ids[i] for i in rows]

    @cached_property
    def _read(self) -> dict[str, MovieTable]:
        return {}

    def _table(self, key: str) -> MovieTable:
        """The table of ``train_csv``/``val_csv``/``test_csv``, read and validated once."""
        if key not in self._read:
            self._read[key] = self.train_table if key == "train_csv" else \
                self._read_labelled(self.hparams[key], require_labels=key == "val_csv")
        return self._read[key]

    def _tables(self) -> list[MovieTable]:
        return [self._table(key) for key in ("train_csv", "val_csv", "test_csv") if self.hparams[key]]

    @cached_property
    def _ids(self) -> dict[Path, TokenIds]:
        return {}

    def _token_ids(self, table: MovieTable) -> TokenIds:
        """Every row of ``table`` tokenized, once per process; from the on-disk cache when another job
        or rank made it (``token_cache_dir``; null: no disk cache)."""
        if table.path not in self._ids:
            self._ids[table.path] = cached_tokenize(
                table, self.tokenizer, self.hparams.max_length, self.hparams.token_cache_dir, self.hparams.truncation
            )
        return self._ids[table.path]

    def prepare_data(self) -> None:
        """Lightning runs this on one process per node (before ``setup`` on all): fill the token cache."""
        if self.hparams.token_cache_dir:
            for table in self._tables():
                self._token_ids(table)

    def _dataset(self, table: MovieTable, rows: np.ndarray, teach: bool = False) -> TokenizedDataset:
        ids = self._token_ids(table).take(rows)
        targets = soft = None
        if table.labels is not None:
            targets = self.label_space.encode([table.labels[i] for i in rows])
        if teach and self.teacher is not None:
            soft = self.teacher.soft_targets([table.texts[i] for i in rows], targets, self.label_space.names,
                                             self.label_space.multi_label)
        return TokenizedDataset(ids, targets, soft)

    @property
    def has_test_labels(self) -> bool:
        return "test" in self.splits and self.splits["test"].dataset.targets is not None

    def rows_with_several_genres(self) -> int:
        """Rows of the training file with more than one genre (none: single-label data)."""
        return sum(len(row) > 1 for row in self.train_table.labels)

    def label_prior(self) -> list[float]:
        """Share of training rows carrying each genre."""
        self.setup()
        return self.splits["train"].dataset.targets.mean(axis=0).tolist()

    def pos_weight(self) -> list[float]:
        """negatives / positives per genre on the training split (for BCE ``pos_weight``)."""
        prior = np.clip(np.asarray(self.label_prior()), 1e-6, None)
        return ((1 - prior) / prior).tolist()

    @property
    def eval_batch(self) -> int:
        """Batch size for validation/test and inference: ``eval_batch_size``, else the training batch."""
        return self.hparams.eval_batch_size or self.hparams.batch_size

    def fit_global_batch(self, world_size: int, accumulate: int) -> None:
        """Per-device batch = global batch / (devices x nodes x accumulation), which must divide exactly."""
        total = self.hparams.global_batch_size
        if total is None:
            return
        share = world_size * accumulate
        if total % share:
            raise GenreLabError(
                f"data.global_batch_size={total} is not divisible by {world_size} device(s) x "
                f"{accumulate} accumulation step(s); use a multiple of {share}"
            )
        self.hparams.batch_size = total // share
        log.info("global batch %d = %d per device x %d devices x %d accumulation", total,
                 self.hparams.batch_size, world_size, accumulate)

    def _sampler(self, stage: str) -> Sampler[int]:
        """Training: length-grouped shuffled batches (or a plain seeded shuffle); eval: longest first."""
        lengths = self.splits[stage].dataset.input_ids.lengths
        if stage != "train":
            return LengthSortedSampler(lengths)
        if not self.hparams.length_grouping:
            return EpochShuffleSampler(len(lengths), self.shuffle_seed)
        world = self.trainer.world_size if self.trainer is not None else 1  # no trainer: a loader built by hand
        return LengthGroupedSampler(lengths, self.hparams.batch_size * world, self.shuffle_seed)

    def _loader(self, stage: str) -> DataLoader:
        if stage not in self.splits:
            raise GenreLabError(f"no {stage} data configured (set data.{stage}_csv)")
        hp = self.hparams
        collate = make_collator(self.tokenizer, hp.max_length if hp.pad_to_max_length else None, hp.pad_multiple)
        batch = hp.batch_size if stage == "train" else self.eval_batch
        workers = hp.num_workers
        if workers:
            # Workers only pad (PadCollator); the tokenizer's thread pool is done by now. Setting this
            # keeps the tokenizers library from warning in every forked worker.
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        return DataLoader(
            self.splits[stage].dataset,
            batch_size=batch,
            sampler=self._sampler(stage),
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def describe(self) -> str:
        sizes = ", ".join(f"{k}={len(v.rows)}" for k, v in self.splits.items())
        return f"{Path(self.hparams.train_csv).name}: {len(self.label_space)} genres; rows {sizes}"


def data_defaults() -> dict[str, Any]:
    """The datamodule's default settings, from its signature: what a checkpoint without data settings means."""
    params = inspect.signature(GenreDataModule.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
