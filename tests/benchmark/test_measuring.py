"""The measuring helpers on known inputs: a known allocation, synthetic clock stamps, a fake clock."""

import time
import types

import numpy as np
import psutil
import pytest
import torch

from genre_lab.benchmark import measuring
from genre_lab.benchmark.measuring import CountingCollator, median_rates, peak_memory, timed_repeats, top1_and_f1
from genre_lab.scoring.decoding import Decoder

MIB = 2**20


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def test_peak_memory_sees_an_allocation_freed_inside_the_block():
    figures = {}
    with peak_memory(figures, "train"):
        before = rss_mib()
        block = np.ones(256 * MIB, dtype=np.uint8)  # touched, so resident
        time.sleep(10 * measuring.SAMPLE_EVERY_S)
        del block
    after = rss_mib()
    # only the sampling thread can have seen it: the 256 MiB went back to the OS before the block ended
    assert figures["train_peak_rss_mib"] >= before + 240
    assert after < figures["train_peak_rss_mib"] - 200
    expected = {"train_peak_rss_mib"} | ({"train_peak_gpu_mib"} if torch.cuda.is_available() else set())
    assert set(figures) == expected


def test_peak_memory_records_even_when_the_block_fails():
    figures = {}
    with pytest.raises(RuntimeError), peak_memory(figures, "eval"):
        raise RuntimeError("boom")
    assert figures["eval_peak_rss_mib"] > 0


def test_median_rates_skip_warmup_and_take_the_median():
    stamps = [0.0, 10.0, 11.0, 12.0, 14.0, 15.0, 16.0, 20.0]  # step 1 is the slow warm-up
    rows, tokens = [8] * 7, [0, 50, 50, 50, 50, 50, 50]
    rates = median_rates(stamps, rows, tokens, warmup=1, steps=2, repeats=3)
    # windows after the warm-up step: steps 2-3 take 2 s, 4-5 take 3 s, 6-7 take 5 s (16 samples each)
    assert rates["train_samples_per_s"] == 16 / 3
    assert rates["train_tokens_per_s"] == 100 / 3


def test_median_rates_count_each_windows_own_samples_and_tokens():
    stamps = [0.0, 1.0, 2.0, 3.0]  # every step 1 s
    rows = [4, 4, 2]  # the last batch of an epoch is smaller
    tokens = [999, 10, 30]  # the warm-up step's tokens are not counted
    rates = median_rates(stamps, rows, tokens, warmup=1, steps=1, repeats=2)
    assert rates == {"train_samples_per_s": 3.0, "train_tokens_per_s": 20.0}


def test_timed_repeats_warms_up_once_and_takes_the_median(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(measuring, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    durations = iter([100.0, 3.0, 1.0, 2.0])  # the untimed warm-up call is the slow one

    def run():
        now[0] += next(durations)

    assert timed_repeats(run, repeats=3) == 2.0
    assert next(durations, None) is None  # called exactly repeats + 1 times


def test_counting_collator_records_real_tokens_per_batch():
    def pad(items):
        width = max(len(item) for item in items)
        return {"attention_mask": torch.tensor([[1] * len(item) + [0] * (width - len(item)) for item in items])}

    counter = CountingCollator(pad)
    batch = counter([[5, 6, 7], [5]])
    counter([[1, 2]])
    assert counter.tokens == [4, 2] and counter.rows == [2, 1]
    assert batch["attention_mask"].shape == (2, 3)  # the inner collator's batch, unchanged


def test_top1_and_f1_on_known_arrays():
    probs = [[0.9, 0.2], [0.6, 0.7], [0.1, 0.3]]
    targets = [[1, 0], [1, 0], [0, 1]]
    figures = top1_and_f1(np.array(probs), np.array(targets, dtype=float))
    assert figures["top1_accuracy"] == pytest.approx(2 / 3)
    assert figures["f1_micro"] == pytest.approx(2 * 2 / (3 + 3))  # tp=2, predicted 3, true 3


def test_top1_and_f1_decide_by_the_given_decoder():
    probs, targets = np.array([[0.9, 0.2], [0.6, 0.7]]), np.array([[1, 0], [1, 0]], dtype=float)
    strict = top1_and_f1(probs, targets, Decoder(0.8))  # only 0.9 passes: tp=1, predicted 1, true 2
    assert strict["f1_micro"] == pytest.approx(2 * 1 / (1 + 2))
    assert strict["top1_accuracy"] == top1_and_f1(probs, targets)["top1_accuracy"] == 0.5
