"""`genre-lab bench`: the notebook's recipe against genre_lab's default, side by side in one process.

Same CSV, same split (the datamodule's), same backbone. The notebook recipe is the HF ``Trainer`` with
every text padded to 128 tokens, batch 8, fp32; genre_lab's is what ``genre-lab train`` does with the
composed config (dynamic padding, length-grouped batches, the configured precision, fused AdamW).
Each measurement skips warm-up steps, repeats ``bench.repeats`` times and reports the median.
Prints a table and writes ``bench.json`` into the run directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from genre_lab.config_dir import config_dir
from genre_lab.data.token_cache import cached_tokenize
from genre_lab.data.tokens import TokenIds, make_collator, tokenize
from genre_lab.errors import GenreLabError, run_app, user_errors
from genre_lab.io import write_json
from genre_lab.model.backbone import load_classifier
from genre_lab.model.inference import predict_probs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score
from genre_lab.scoring.report import print_table
from genre_lab.train import build_model

log = logging.getLogger(__name__)
Figures = dict[str, float]


# -- measuring ------------------------------------------------------------------------------
def release_memory() -> None:
    """Hand freed memory back to the OS, so one phase's peak RSS does not start from another's leftovers."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(into: Figures, phase: str) -> Iterator[None]:
    """``{phase}_peak_rss_mib`` (sampled every 20 ms) and ``{phase}_peak_gpu_mib`` of the block, in MiB."""
    import psutil  # deferred: the bench extra (checked in bench())

    release_memory()
    process, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        into[f"{phase}_peak_rss_mib"] = peak[0] / 2**20
        if torch.cuda.is_available():
            into[f"{phase}_peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20


def median_rates(stamps: list[float], tokens: list[int], batch: int, warmup: int, steps: int, repeats: int) -> Figures:
    """Median samples/s and real tokens/s over ``repeats`` windows of ``steps`` steps after ``warmup``.

    ``stamps[0]`` is the start, ``stamps[k]`` the end of step k; ``tokens[k-1]`` the real tokens of step k.
    """
    rates, token_rates = [], []
    for r in range(repeats):
        first, last = warmup + r * steps, warmup + (r + 1) * steps
        seconds = stamps[last] - stamps[first]
        rates.append(steps * batch / seconds)
        token_rates.append(sum(tokens[first:last]) / seconds)
    return {"train_samples_per_s": statistics.median(rates), "train_tokens_per_s": statistics.median(token_rates)}


def timed_repeats(run: Callable[[], None], repeats: int) -> float:
    """Median seconds of ``run`` over ``repeats`` calls, after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class CountingCollator:
    """Wraps a collate function and records each batch's real (non-padding) token count."""

    def __init__(self, inner: Callable[[list], dict[str, torch.Tensor]]) -> None:
        self.inner, self.tokens = inner, []

    def __call__(self, items: list) -> dict[str, torch.Tensor]:
        batch = self.inner(items)
        self.tokens.append(int(batch["attention_mask"].sum()))
        return batch


def top1_and_f1(probs: np.ndarray, targets: np.ndarray, decoder: Decoder | None = None) -> Figures:
    """Top-1 accuracy and micro-F1 under ``decoder`` (``decode=``; by default threshold 0.5, the notebook's
    rule), by the one scoring path."""
    names = [str(i) for i in range(probs.shape[1])]
    figures = score(probs, targets, decoder or Decoder(0.5), names, "val").metrics
    return {"top1_accuracy": figures["val/top1_accuracy"], "f1_micro": figures["val/f1_micro"]}


# -- the notebook's recipe: HF Trainer, padding to 128, batch 8, fp32 -------------------------
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


class Notebook:
    """The notebook's recipe, built on the same rows, labels and backbone as genre_lab's run."""

    def __init__(self, cfg: DictConfig, datamodule: Any, workdir: Path) -> None:
        self.cfg, self.dm, self.workdir = cfg, datamodule, workdir
        nb = cfg.notebook
        start = time.perf_counter()
        encoded = datamodule.tokenizer(datamodule.train_table.texts, padding="max_length", truncation=True,
                                       max_length=nb.max_length)
        self.tokenize_s = time.perf_counter() - start
        self.sets = {stage: self._subset(encoded, stage) for stage in ("train", "val")}

    def _subset(self, encoded: dict[str, list], stage: str) -> PaddedDataset:
        split = self.dm.splits[stage]
        rows = {k: [encoded[k][i] for i in split.rows] for k in ("input_ids", "attention_mask")}
        return PaddedDataset(rows, split.dataset.targets)

    def trainer(self, clock: list[float] | None = None, **overrides: Any) -> Any:
        # deferred: the HF Trainer is only needed by bench
        from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

        nb = self.cfg.notebook
        args = TrainingArguments(
            output_dir=str(self.workdir / "hf"), per_device_train_batch_size=nb.batch_size,
            per_device_eval_batch_size=nb.batch_size, learning_rate=nb.lr, weight_decay=nb.weight_decay,
            use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no",
            logging_strategy="no", disable_tqdm=True, seed=self.cfg.seed, **overrides,
        )

        class Clock(TrainerCallback):
            def on_train_begin(self, *_: Any, **__: Any) -> None:
                clock is not None and clock.append(time.perf_counter())

            def on_step_end(self, *_: Any, **__: Any) -> None:
                clock is not None and clock.append(time.perf_counter())

        pl.seed_everything(self.cfg.seed)
        model = load_classifier(self.cfg.model.backbone, list(self.dm.label_space.names))
        self.collate = CountingCollator(default_data_collator)
        return Trainer(model=model, args=args, train_dataset=self.sets["train"], data_collator=self.collate,
                       callbacks=[Clock()])

    def train_rates(self, warmup: int, steps: int, repeats: int) -> Figures:
        clock: list[float] = []
        trainer = self.trainer(clock, max_steps=warmup + steps * repeats)
        figures: Figures = {}
        with peak_memory(figures, "train"):
            trainer.train()
        figures.update(median_rates(clock, self.collate.tokens, self.cfg.notebook.batch_size, warmup, steps, repeats))
        self.hf_trainer = trainer
        return figures

    def eval_rates(self, rows: int, repeats: int) -> Figures:
        subset = torch.utils.data.Subset(self.sets["val"], range(rows))
        tokens = int(self.sets["val"].mask[:rows].sum())
        figures: Figures = {}
        with peak_memory(figures, "eval"):
            seconds = timed_repeats(lambda: self.hf_trainer.predict(subset), repeats)
        return {**figures, "eval_samples_per_s": rows / seconds, "eval_tokens_per_s": tokens / seconds}

    def release(self) -> None:
        self.__dict__.pop("hf_trainer", None)

    def quality(self, epochs: int, decoder: Decoder) -> Figures:
        trainer = self.trainer(num_train_epochs=epochs)
        trainer.train()
        logits = trainer.predict(self.sets["val"]).predictions
        return top1_and_f1(1 / (1 + np.exp(-logits)), self.sets["val"].targets.numpy(), decoder)


# -- genre_lab's default recipe -------------------------------------------------------------
class GenreLab:
    """What `genre-lab train` does with this config, timed."""

    def __init__(self, cfg: DictConfig, datamodule: Any) -> None:
        self.cfg, self.dm = cfg, datamodule
        self.precision = str(cfg.trainer.precision)
        self.collate = make_collator(datamodule.tokenizer, pad_multiple=datamodule.hparams.pad_multiple)

    def trainer(self, callbacks: list, **overrides: Any) -> pl.Trainer:
        quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                 "enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 0}
        return hydra.utils.instantiate(self.cfg.trainer, callbacks=callbacks, **{**quiet, **overrides})

    def model(self) -> pl.LightningModule:
        pl.seed_everything(self.cfg.seed)
        return build_model(self.cfg, self.dm)

    def train_rates(self, warmup: int, steps: int, repeats: int) -> Figures:
        clock: list[float] = []

        class Clock(pl.Callback):
            def on_train_start(self, *_: Any) -> None:
                clock.append(time.perf_counter())

            def on_train_batch_end(self, *_: Any) -> None:
                clock.append(time.perf_counter())

        loader = self.dm.train_dataloader()
        counter = CountingCollator(loader.collate_fn)
        loader.collate_fn = counter
        model = self.model()
        trainer = self.trainer([Clock()], max_steps=warmup + steps * repeats, max_epochs=-1)
        figures: Figures = {}
        with peak_memory(figures, "train"):
            trainer.fit(model, train_dataloaders=loader)
        figures.update(median_rates(clock, counter.tokens, self.dm.hparams.batch_size, warmup, steps, repeats))
        self.trained = model
        return figures

    def eval_rates(self, rows: int, repeats: int) -> Figures:
        ids = self.dm.splits["val"].dataset.input_ids.take(np.arange(rows))
        figures: Figures = {}
        with peak_memory(figures, "eval"):
            seconds = timed_repeats(lambda: predict_probs(self.trained, ids, self.collate, self.dm.eval_batch,
                                                          precision=self.precision), repeats)
        return {**figures, "eval_samples_per_s": rows / seconds, "eval_tokens_per_s": int(ids.lengths.sum()) / seconds}

    def release(self) -> None:
        self.__dict__.pop("trained", None)

    def quality(self, epochs: int, decoder: Decoder) -> Figures:
        model = self.model()
        self.trainer([], max_epochs=epochs).fit(model, datamodule=self.dm)
        data = self.dm.splits["val"].dataset
        probs = predict_probs(model, data.input_ids, self.collate, self.dm.eval_batch,
                              precision=self.precision)
        return top1_and_f1(probs, data.targets, decoder)


# -- the comparison -------------------------------------------------------------------------
def tokenization_figures(dm: Any, rows: int) -> Figures:
    """Cold tokenization of ``rows`` texts (the training file's, repeated), and loading the training
    file's ids back from the on-disk cache."""
    texts = dm.train_table.texts
    texts = (texts * -(-rows // len(texts)))[:rows]
    start = time.perf_counter()
    tokenize(dm.tokenizer, texts, dm.hparams.max_length, dm.hparams.truncation)
    cold = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as cache:
        cached_tokenize(dm.train_table, dm.tokenizer, dm.hparams.max_length, cache, dm.hparams.truncation)
        start = time.perf_counter()
        ids: TokenIds = cached_tokenize(dm.train_table, dm.tokenizer, dm.hparams.max_length, cache,
                                        dm.hparams.truncation)
        warm = time.perf_counter() - start
    return {"tokenize_rows": float(rows), "tokenize_rows_s": cold, "token_cache_load_s": warm,
            "mean_tokens": float(ids.lengths.mean())}


ROWS = [  # (label, key, higher is better): the ratio column is always genre_lab / notebook
    ("training samples/s", "train_samples_per_s", True),
    ("training real tokens/s", "train_tokens_per_s", True),
    ("eval samples/s", "eval_samples_per_s", True),
    ("eval real tokens/s", "eval_tokens_per_s", True),
    ("training peak RSS MiB (lower is better)", "train_peak_rss_mib", False),
    ("training peak GPU MiB (lower is better)", "train_peak_gpu_mib", False),
    ("eval peak RSS MiB (lower is better)", "eval_peak_rss_mib", False),
    ("eval peak GPU MiB (lower is better)", "eval_peak_gpu_mib", False),
    ("tokenization s, training file (lower is better)", "tokenize_s", False),
    ("top-1 accuracy", "top1_accuracy", True),
    ("micro-F1 (decode=, default threshold 0.5)", "f1_micro", True),
]


def print_comparison(results: dict[str, Figures], title: str) -> None:
    nb, gl = results["notebook"], results["genre_lab"]
    rows = [{"measure": label, "notebook recipe": f"{nb[key]:.4g}", "genre_lab": f"{gl[key]:.4g}",
             "genre_lab / notebook": f"{gl[key] / nb[key]:.2f}x" if nb[key] else ""}
            for label, key, _ in ROWS if key in nb and key in gl]
    print_table(rows, ["measure", "notebook recipe", "genre_lab", "genre_lab / notebook"], title)


def bench(cfg: DictConfig) -> dict[str, Any]:
    b = cfg.bench
    try:
        # deferred on purpose: the bench extra, named in the error when missing
        import accelerate  # noqa: F401  (the HF Trainer needs it)
        import psutil  # noqa: F401
    except ImportError as err:
        raise GenreLabError(f"genre-lab bench needs {err.name}: pip install 'genre_lab[bench]'") from None
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    log.info(dm.describe())
    tokens = tokenization_figures(dm, b.tokenize_rows)
    out = Path(cfg.paths.output_dir)
    nb_batch, gl_batch = cfg.notebook.batch_size, dm.hparams.batch_size
    results: dict[str, Figures] = {"notebook": {}, "genre_lab": {}}
    with tempfile.TemporaryDirectory() as workdir:
        notebook = Notebook(cfg, dm, Path(workdir))
        results["notebook"]["tokenize_s"] = notebook.tokenize_s
        start = time.perf_counter()
        tokenize(dm.tokenizer, dm.train_table.texts, dm.hparams.max_length, dm.hparams.truncation)
        results["genre_lab"]["tokenize_s"] = time.perf_counter() - start
        eval_rows = min(b.eval_samples, len(dm.splits["val"].rows))
        for name, recipe, batch in (("notebook", notebook, nb_batch), ("genre_lab", GenreLab(cfg, dm), gl_batch)):
            log.info("%s: timing training (%d samples x %d repeats) and eval (%d rows)",
                     name, b.train_samples, b.repeats, eval_rows)
            results[name].update(recipe.train_rates(b.warmup_steps, max(1, b.train_samples // batch), b.repeats))
            results[name].update(recipe.eval_rates(eval_rows, b.repeats))
            if b.quality_epochs:
                log.info("%s: training %d epoch(s) on the full split for quality", name, b.quality_epochs)
                results[name].update(recipe.quality(b.quality_epochs, hydra.utils.instantiate(cfg.decode)))
            recipe.release()
    setup = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
             "torch_threads": torch.get_num_threads(), "precision": str(cfg.trainer.precision),
             "backbone": cfg.model.backbone, "data": dm.describe(), "tokens": tokens,
             "notebook": dict(cfg.notebook), "bench": dict(b)}
    report = {**results, "ratio": {k: results["genre_lab"][k] / v for k, v in results["notebook"].items()
                                   if results["genre_lab"].get(k) and v}, "setup": setup}
    write_json(out / "bench.json", report)
    print_comparison(results, f"{setup['backbone']} on {setup['device']} ({setup['precision']}); {setup['data']}")
    log.info("genre_lab tokenized %d rows in %.2f s (mean %.1f tokens); the training file's ids load from "
             "the cache in %.3f s; figures in %s", tokens["tokenize_rows"], tokens["tokenize_rows_s"],
             tokens["mean_tokens"], tokens["token_cache_load_s"], out / "bench.json")
    return report


@hydra.main(config_path=str(config_dir()), config_name="bench", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    run_app(main)
