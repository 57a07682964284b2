"""How a recipe is measured: peak memory of a phase, training rates from per-step clock stamps, the median of
repeated timings, real (non-padding) tokens per batch, and the quality figures by the one scoring path."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score

Figures = dict[str, float]
SAMPLE_EVERY_S = 0.02  # how often the peak-memory sampler reads the process's RSS


def release_memory() -> None:
    """Hand freed memory back to the OS, so one phase's peak RSS does not start from another's leftovers."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(into: Figures, phase: str) -> Iterator[None]:
    """``{phase}_peak_rss_mib`` (sampled every 20 ms) and, on CUDA, ``{phase}_peak_gpu_mib`` of the block, in MiB,
    written into ``into``."""
    import psutil  # deferred: the bench extra (checked by the command)

    release_memory()
    process, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY_S):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        into[f"{phase}_peak_rss_mib"] = peak[0] / 2**20
        if torch.cuda.is_available():
            into[f"{phase}_peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20


def median_rates(stamps: list[float], rows: list[int], tokens: list[int], warmup: int, steps: int,
                 repeats: int) -> Figures:
    """Median samples/s and real tokens/s over ``repeats`` windows of ``steps`` steps after ``warmup``.

    ``stamps[0]`` is the start, ``stamps[k]`` the end of step k; ``rows[k-1]`` and ``tokens[k-1]`` the samples and
    real tokens of step k (counted, so an epoch's last, smaller batch counts what it holds).
    """
    sample_rates, token_rates = [], []
    for window in range(repeats):
        first, last = warmup + window * steps, warmup + (window + 1) * steps
        seconds = stamps[last] - stamps[first]
        sample_rates.append(sum(rows[first:last]) / seconds)
        token_rates.append(sum(tokens[first:last]) / seconds)
    return {"train_samples_per_s": statistics.median(sample_rates),
            "train_tokens_per_s": statistics.median(token_rates)}


def timed_repeats(run: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``run`` over ``repeats`` calls, after one untimed warm-up call."""
    run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


class CountingCollator:
    """Wraps a collate function and records each batch's rows and real (non-padding) tokens, in order."""

    def __init__(self, inner: Callable[[list], dict[str, torch.Tensor]]) -> None:
        self.inner = inner
        self.rows: list[int] = []
        self.tokens: list[int] = []

    def __call__(self, items: list) -> dict[str, torch.Tensor]:
        batch = self.inner(items)
        self.rows.append(len(items))
        self.tokens.append(int(batch["attention_mask"].sum()))
        return batch


def top1_and_f1(probs: np.ndarray, targets: np.ndarray, decoder: Decoder | None = None) -> Figures:
    """Top-1 accuracy and micro-F1 under ``decoder`` (``decode=``; by default threshold 0.5, the notebook's
    rule), by the one scoring path."""
    names = [str(i) for i in range(probs.shape[1])]
    figures = score(probs, targets, decoder or Decoder(0.5), names, "val").metrics
    return {"top1_accuracy": figures["val/top1_accuracy"], "f1_micro": figures["val/f1_micro"]}


class Recipe(Protocol):
    """What bench asks of a recipe (``NotebookRecipe``, ``GenreLabRecipe``): each phase's figures."""

    name: str  # its key in bench.json
    batch_size: int  # training samples per step
    tokenize_s: float  # seconds to tokenize the training file its way

    def train_rates(self, warmup: int, steps: int, repeats: int) -> Figures: ...

    def eval_rates(self, rows: int, repeats: int) -> Figures: ...

    def quality(self, epochs: int, decoder: Decoder) -> Figures: ...

    def release(self) -> None: ...
