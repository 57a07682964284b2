"""genre_lab's recipe, as bench times it: what `genre-lab train` does with the composed config — the classifier
from ``model.build``, the Trainer from ``framework.trainer``, the datamodule's dynamic padding and length-grouped
batches, the configured precision — and its tokenizer and token cache."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig

from genre_lab.benchmark.measuring import (
    CountingCollator,
    Figures,
    median_rates,
    peak_memory,
    timed_repeats,
    top1_and_f1,
)
from genre_lab.data.datamodule import GenreDataModule
from genre_lab.data.movie_data import MovieData
from genre_lab.data.token_cache import cached_tokenize
from genre_lab.data.tokens import make_collator, tokenize
from genre_lab.framework.trainer import build_trainer
from genre_lab.model.build import build_model
from genre_lab.model.inference import predict_probs
from genre_lab.scoring.decoding import Decoder

# no logger, checkpoint, progress bar, summary or validation: only the training steps are timed
QUIET = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
         "num_sanity_val_steps": 0, "limit_val_batches": 0}


def tokenize_seconds(data: MovieData, texts: list[str]) -> float:
    """Seconds genre_lab takes to tokenize ``texts`` (no padding, the data's max_length and truncation)."""
    start = time.perf_counter()
    tokenize(data.tokenizer, texts, data.settings["max_length"], data.settings["truncation"])
    return time.perf_counter() - start


def tokenization_figures(data: MovieData, rows: int) -> Figures:
    """Cold tokenization of ``rows`` texts (the training file's, repeated), and loading the training file's ids
    back from the on-disk token cache."""
    table, settings = data.train_table, data.settings
    texts = (table.texts * -(-rows // len(table.texts)))[:rows]
    cold = tokenize_seconds(data, texts)
    with tempfile.TemporaryDirectory() as cache:
        def load() -> Any:
            return cached_tokenize(table.texts, table.path.name, data.tokenizer, settings["max_length"], cache,
                                   settings["truncation"])

        load()  # fills the cache
        start = time.perf_counter()
        ids = load()
        warm = time.perf_counter() - start
    return {"tokenize_rows": float(rows), "tokenize_rows_s": cold, "token_cache_load_s": warm,
            "mean_tokens": float(ids.lengths.mean())}


class StepClock(pl.Callback):
    """Appends the time at the start of training and at the end of each training batch to ``stamps``."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_start(self, *_: Any) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_batch_end(self, *_: Any) -> None:
        self.stamps.append(time.perf_counter())


class GenreLabRecipe:
    """What `genre-lab train` does with ``cfg`` on ``datamodule``'s rows (set up already), timed."""

    name = "genre_lab"

    def __init__(self, cfg: DictConfig, datamodule: GenreDataModule) -> None:
        self.cfg, self.datamodule, self.data = cfg, datamodule, datamodule.data
        self.precision = str(cfg.trainer.precision)
        self.batch_size = datamodule.batch_size  # per device
        self.collate = make_collator(self.data.tokenizer, pad_multiple=self.data.settings["pad_multiple"])
        self.tokenize_s = tokenize_seconds(self.data, self.data.train_table.texts)
        self.trained: pl.LightningModule | None = None  # the timed model, which the eval timing predicts with
        self.probs: np.ndarray | None = None  # validation probabilities of the quality run
        self.targets: np.ndarray | None = None

    def trainer(self, callbacks: list[pl.Callback], **overrides: Any) -> pl.Trainer:
        return build_trainer(self.cfg, False, callbacks, **{**QUIET, **overrides})

    def model(self) -> pl.LightningModule:
        """A freshly seeded classifier, built as train builds it."""
        pl.seed_everything(self.cfg.seed)
        return build_model(self.cfg, self.data.label_stats())

    def train_rates(self, warmup: int, steps: int, repeats: int) -> Figures:
        clock = StepClock()
        loader = self.datamodule.train_dataloader()
        counter = CountingCollator(loader.collate_fn)
        loader.collate_fn = counter
        model = self.model()
        trainer = self.trainer([clock], max_steps=warmup + steps * repeats, max_epochs=-1)
        figures: Figures = {}
        with peak_memory(figures, "train"):
            trainer.fit(model, train_dataloaders=loader)
        figures.update(median_rates(clock.stamps, counter.rows, counter.tokens, warmup, steps, repeats))
        self.trained = model
        return figures

    def eval_rates(self, rows: int, repeats: int) -> Figures:
        """Probabilities of the first ``rows`` validation rows from the timed model (``train_rates`` first)."""
        ids = self.data.splits["val"].dataset.input_ids.take(np.arange(rows))
        figures: Figures = {}
        with peak_memory(figures, "eval"):
            seconds = timed_repeats(lambda: predict_probs(self.trained, ids, self.collate, self.data.eval_batch,
                                                          precision=self.precision), repeats)
        return {**figures, "eval_samples_per_s": rows / seconds,
                "eval_tokens_per_s": int(ids.lengths.sum()) / seconds}

    def release(self) -> None:
        self.trained = None

    def quality(self, epochs: int, decoder: Decoder) -> Figures:
        """Top-1 and micro-F1 on the validation rows after ``epochs`` epochs on all training rows."""
        model = self.model()
        self.trainer([], max_epochs=epochs).fit(model, datamodule=self.datamodule)
        val = self.data.splits["val"].dataset
        self.probs = predict_probs(model, val.input_ids, self.collate, self.data.eval_batch, precision=self.precision)
        self.targets = val.targets
        return top1_and_f1(self.probs, self.targets, decoder)
