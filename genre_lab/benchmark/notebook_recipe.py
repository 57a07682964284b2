"""The seed notebook's recipe, as bench times it: the HF ``Trainer``, every text padded to ``notebook.max_length``
(128) tokens, batch ``notebook.batch_size`` (8), fp32, the backbone's own classification head; built on the same
rows, labels and backbone as genre_lab's recipe (``genre_lab_recipe``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset, Subset

from genre_lab.benchmark.measuring import (
    CountingCollator,
    Figures,
    median_rates,
    peak_memory,
    timed_repeats,
    top1_and_f1,
)
from genre_lab.data.movie_data import MovieData
from genre_lab.model.backbone import load_classifier
from genre_lab.scoring.decoding import Decoder


class PaddedDataset(Dataset):
    """Pre-padded tensors, as the notebook's ``tokenizer(..., padding="max_length")`` produced them."""

    def __init__(self, encoded: dict[str, list], targets: np.ndarray) -> None:
        self.input_ids = torch.tensor(encoded["input_ids"])
        self.mask = torch.tensor(encoded["attention_mask"])
        self.targets = torch.as_tensor(targets, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.mask[i], "labels": self.targets[i]}


def step_clock(stamps: list[float]) -> Any:
    """An HF ``TrainerCallback`` that appends the time at the start of training and at the end of each step."""
    from transformers import TrainerCallback  # deferred: the HF Trainer is only needed by bench

    class StepClock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

    return StepClock()


class NotebookRecipe:
    """The notebook's recipe on ``data``'s training and validation rows (``data`` tokenized its splits already or
    does so here); ``cfg.notebook`` holds its settings, ``workdir`` takes the HF Trainer's output folder."""

    name = "notebook"

    def __init__(self, cfg: DictConfig, data: MovieData, workdir: Path) -> None:
        self.cfg, self.data, self.workdir = cfg, data, workdir
        self.settings = cfg.notebook
        self.batch_size = int(self.settings.batch_size)
        start = time.perf_counter()  # the notebook tokenizes the whole training file, then splits it
        self.encoded = {data.train_table.path: self._encode(data.train_table.texts)}
        self.tokenize_s = time.perf_counter() - start
        self.sets = {stage: self._padded(stage) for stage in ("train", "val")}
        self.collate: CountingCollator | None = None  # the last trainer's, counting real tokens per step
        self.timed: Any = None  # the HF Trainer of the timed training, which the eval timing predicts with
        self.probs: np.ndarray | None = None  # validation probabilities of the quality run
        self.targets: np.ndarray | None = None

    def _encode(self, texts: list[str]) -> dict[str, list]:
        return self.data.tokenizer(texts, padding="max_length", truncation=True, max_length=self.settings.max_length)

    def _padded(self, stage: str) -> PaddedDataset:
        split = self.data.tokenized()[stage]
        if split.table.path not in self.encoded:  # a separate validation file (data.val_csv)
            self.encoded[split.table.path] = self._encode(split.table.texts)
        encoded = self.encoded[split.table.path]
        rows = {key: [encoded[key][i] for i in split.rows] for key in ("input_ids", "attention_mask")}
        return PaddedDataset(rows, split.dataset.targets)

    def trainer(self, stamps: list[float] | None = None, **overrides: Any) -> Any:
        """A fresh HF Trainer on a freshly seeded classifier; ``stamps`` collects its step times."""
        # deferred: the HF Trainer is only needed by bench
        from transformers import Trainer, TrainingArguments, default_data_collator

        settings = self.settings
        args = TrainingArguments(
            output_dir=str(self.workdir / "hf"), per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size, learning_rate=settings.lr,
            weight_decay=settings.weight_decay, use_cpu=not torch.cuda.is_available(), report_to="none",
            save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=self.cfg.seed, **overrides,
        )
        pl.seed_everything(self.cfg.seed)
        model = load_classifier(self.cfg.model.backbone, list(self.data.label_space.names))
        self.collate = CountingCollator(default_data_collator)
        return Trainer(model=model, args=args, train_dataset=self.sets["train"], data_collator=self.collate,
                       callbacks=[] if stamps is None else [step_clock(stamps)])

    def train_rates(self, warmup: int, steps: int, repeats: int) -> Figures:
        stamps: list[float] = []
        trainer = self.trainer(stamps, max_steps=warmup + steps * repeats)
        figures: Figures = {}
        with peak_memory(figures, "train"):
            trainer.train()
        figures.update(median_rates(stamps, self.collate.rows, self.collate.tokens, warmup, steps, repeats))
        self.timed = trainer
        return figures

    def eval_rates(self, rows: int, repeats: int) -> Figures:
        """Predictions of the first ``rows`` validation rows by the timed trainer (``train_rates`` first)."""
        subset = Subset(self.sets["val"], range(rows))
        tokens = int(self.sets["val"].mask[:rows].sum())
        figures: Figures = {}
        with peak_memory(figures, "eval"):
            seconds = timed_repeats(lambda: self.timed.predict(subset), repeats)
        return {**figures, "eval_samples_per_s": rows / seconds, "eval_tokens_per_s": tokens / seconds}

    def release(self) -> None:
        self.timed = None

    def quality(self, epochs: int, decoder: Decoder) -> Figures:
        """Top-1 and micro-F1 on the validation rows after ``epochs`` epochs on all training rows."""
        trainer = self.trainer(num_train_epochs=epochs)
        trainer.train()
        logits = trainer.predict(self.sets["val"]).predictions
        self.probs, self.targets = 1 / (1 + np.exp(-logits)), self.sets["val"].targets.numpy()
        return top1_and_f1(self.probs, self.targets, decoder)
