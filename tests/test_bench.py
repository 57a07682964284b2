"""`genre-lab bench` end to end on the tiny model: both recipes timed, figures written, quality scored."""

import json

import numpy as np
import pytest

from genre_lab.bench import bench, median_rates, top1_and_f1
from tests.conftest import compose_cfg


def test_bench_times_both_recipes_and_writes_bench_json(tmp_path):
    cfg = compose_cfg("bench", [
        "model=tiny", "data=sample", "data.sample.per_class=6", "trainer.precision=32-true",
        "bench.train_samples=16", "bench.eval_samples=12", "bench.repeats=2", "bench.warmup_steps=1",
        "bench.quality_epochs=1", "bench.tokenize_rows=1000",
    ], tmp_path)
    report = bench(cfg)
    assert json.loads((tmp_path / "bench.json").read_text())["ratio"] == report["ratio"]
    nb, gl = report["notebook"], report["genre_lab"]
    for figures in (nb, gl):
        assert figures["train_samples_per_s"] > 0 and figures["eval_samples_per_s"] > 0
        assert figures["train_peak_rss_mib"] > 100 and figures["eval_peak_rss_mib"] > 100
        assert 0 <= figures["top1_accuracy"] <= 1
    # real tokens per sample are the data's, whatever the padding: both recipes see the same rows' lengths
    assert nb["train_tokens_per_s"] / nb["train_samples_per_s"] < 128
    assert report["setup"]["tokens"]["tokenize_rows"] == 1000
    assert report["ratio"]["train_samples_per_s"] == gl["train_samples_per_s"] / nb["train_samples_per_s"]


def test_median_rates_skip_warmup_and_take_the_median():
    stamps = [0.0, 10.0, 11.0, 12.0, 14.0, 15.0, 16.0, 20.0]  # step 1 is the slow warm-up
    tokens = [0, 50, 50, 50, 50, 50, 50]
    rates = median_rates(stamps, tokens, batch=8, warmup=1, steps=2, repeats=3)
    # windows after the warm-up step: steps 2-3 take 2 s, 4-5 take 3 s, 6-7 take 5 s (16 samples each)
    assert rates["train_samples_per_s"] == 16 / 3
    assert rates["train_tokens_per_s"] == 100 / 3


def test_top1_and_f1_on_known_arrays():
    probs = [[0.9, 0.2], [0.6, 0.7], [0.1, 0.3]]
    targets = [[1, 0], [1, 0], [0, 1]]
    figures = top1_and_f1(np.array(probs), np.array(targets, dtype=float))
    assert figures["top1_accuracy"] == pytest.approx(2 / 3)
    assert figures["f1_micro"] == pytest.approx(2 * 2 / (3 + 3))  # tp=2, predicted 3, true 3
