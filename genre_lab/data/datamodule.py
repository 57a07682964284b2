"""GenreDataModule: Lightning's loaders over ``MovieData`` (movie_data.py), which holds the data itself.

Lightning sets it up: ``prepare_data`` fills the token cache once per node, ``setup`` tokenizes every stage and
fixes the per-device batch from the trainer (``global_batch_size``); the loaders pad dynamically.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from genre_lab.data.movie_data import FILE_KEYS, MovieData, Teacher
from genre_lab.data.samplers import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler
from genre_lab.data.table import TableSpec
from genre_lab.data.tokens import make_collator
from genre_lab.errors import GenreLabError

log = logging.getLogger(__name__)


def per_device_batch(total: int, world_size: int, accumulate: int) -> int:
    """Per-device batch = global batch / (devices x nodes x accumulation), which must divide exactly."""
    share = world_size * accumulate
    if total % share:
        raise GenreLabError(f"data.global_batch_size={total} is not divisible by {world_size} device(s) x "
                            f"{accumulate} accumulation step(s); use a multiple of {share}")
    log.info("global batch %d = %d per device x %d devices x %d accumulation", total, total // share,
             world_size, accumulate)
    return total // share


class GenreDataModule(pl.LightningDataModule):
    """Movie CSVs -> train/val/(test) dataloaders with dynamic padding; the settings are ``MovieData``'s.

    ``batch_size`` is per device; ``global_batch_size`` (when set) fixes the effective batch instead and the
    per-device batch follows from the trainer's device count and gradient accumulation at ``setup``.
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
        folds: int | None = None,
        fold: int | None = None,
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
        format: str = TableSpec.format,  # noqa: A002 (the data config's key)
        unseen_labels: str = "fail",
        teacher: Teacher | None = None,
    ) -> None:
        super().__init__()
        # the teacher's settings are in the run's config; eval and predict rebuild the data without it
        self.save_hyperparameters(logger=False, ignore=["teacher"])
        self.data = MovieData(dict(self.hparams), teacher)
        self.hparams.update({k: self.data.settings[k] for k in FILE_KEYS})  # absolute, as the checkpoint keeps them
        self.batch_size = batch_size  # per device; ``setup`` derives it from global_batch_size when that is set

    def prepare_data(self) -> None:
        """Lightning runs this on one process per node (before ``setup`` on all): fill the token cache."""
        if self.hparams.token_cache_dir:
            for table in self.data.tables():
                self.data.token_ids(table)

    def setup(self, stage: str | None = None) -> None:
        """Tokenize every stage's rows — once, whatever stage asks first; the per-device batch of a global one."""
        self.data.tokenized()
        if self.hparams.global_batch_size is not None and self.trainer is not None:
            self.batch_size = per_device_batch(self.hparams.global_batch_size, self.trainer.world_size,
                                               self.trainer.accumulate_grad_batches)

    def _sampler(self, stage: str) -> Sampler[int]:
        """Training: length-grouped shuffled batches (or a plain seeded shuffle); eval: longest first."""
        lengths = self.data.splits[stage].dataset.input_ids.lengths
        if stage != "train":
            return LengthSortedSampler(lengths)
        if not self.hparams.length_grouping:
            return EpochShuffleSampler(len(lengths), self.data.shuffle_seed)
        world = self.trainer.world_size if self.trainer is not None else 1  # no trainer: a loader built by hand
        return LengthGroupedSampler(lengths, self.batch_size * world, self.data.shuffle_seed)

    def _loader(self, stage: str) -> DataLoader:
        hp = self.hparams
        collate = make_collator(self.data.tokenizer, hp.max_length if hp.pad_to_max_length else None,
                                hp.pad_multiple)
        workers = hp.num_workers
        if workers:
            # Workers only pad (PadCollator); the tokenizer's thread pool is done by now. Setting this
            # keeps the tokenizers library from warning in every forked worker.
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        return DataLoader(
            self.data.splits[stage].dataset,
            batch_size=self.batch_size if stage == "train" else hp.eval_batch_size or self.batch_size,
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


def data_defaults() -> dict[str, Any]:
    """The data's default settings, from the datamodule's signature: what a checkpoint without them means."""
    params = inspect.signature(GenreDataModule.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
