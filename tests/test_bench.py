"""`genre-lab bench` end to end on the tiny model: both recipes timed and scored on the same validation rows,
bench.json written with its documented keys, the table printed."""

import contextlib
import io
import json

import numpy as np
import pytest

from genre_lab import bench as command
from genre_lab.benchmark.report import ROWS
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import score
from tests.benchmark.conftest import TINY_BENCH
from tests.conftest import compose_cfg

# the figures each recipe writes on a CPU (a GPU adds train_peak_gpu_mib and eval_peak_gpu_mib)
RECIPE_KEYS = {"tokenize_s", "train_samples_per_s", "train_tokens_per_s", "train_peak_rss_mib",
               "eval_samples_per_s", "eval_tokens_per_s", "eval_peak_rss_mib", "top1_accuracy", "f1_micro"}
SETUP_KEYS = {"device", "torch_threads", "precision", "backbone", "data", "tokens", "notebook", "bench"}
TOKEN_KEYS = {"tokenize_rows", "tokenize_rows_s", "token_cache_load_s", "mean_tokens"}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """bench's report, bench.json, the printed table and the two recipes it measured (kept for their stored
    validation probabilities)."""
    out = tmp_path_factory.mktemp("bench")
    cfg = compose_cfg("bench", [
        *TINY_BENCH, "bench.train_samples=16", "bench.eval_samples=12", "bench.repeats=2", "bench.warmup_steps=1",
        "bench.quality_epochs=1", "bench.tokenize_rows=1000",
    ], out)
    recipes = []

    def recorded(cls):
        class Recorded(cls):
            def __init__(self, *args):
                super().__init__(*args)
                recipes.append(self)

        return Recorded

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(command, "NotebookRecipe", recorded(command.NotebookRecipe))
        patch.setattr(command, "GenreLabRecipe", recorded(command.GenreLabRecipe))
        report = command.bench(cfg)
    return report, json.loads((out / "bench.json").read_text()), printed.getvalue(), recipes


def test_bench_json_has_the_documented_keys(ran):
    report, written, _, _ = ran
    assert written == json.loads(json.dumps(report))
    assert set(written) == {"notebook", "genre_lab", "ratio", "setup"}
    for name in ("notebook", "genre_lab"):
        assert set(written[name]) - {"train_peak_gpu_mib", "eval_peak_gpu_mib"} == RECIPE_KEYS, name
    assert set(written["setup"]) == SETUP_KEYS and set(written["setup"]["tokens"]) == TOKEN_KEYS
    assert written["setup"]["tokens"]["tokenize_rows"] == 1000
    assert written["setup"]["data"] == "sample_movies.csv: 10 genres; rows train=48, val=12"


def test_rates_and_memory_are_measured_and_ratios_are_genre_lab_over_notebook(ran):
    report, _, _, _ = ran
    notebook, ours = report["notebook"], report["genre_lab"]
    for figures in (notebook, ours):
        for key in ("train_samples_per_s", "train_tokens_per_s", "eval_samples_per_s", "eval_tokens_per_s",
                    "tokenize_s"):
            assert figures[key] > 0, key
        assert figures["train_peak_rss_mib"] > 100 and figures["eval_peak_rss_mib"] > 100
    # real tokens per sample are the data's, whatever the padding: both recipes see the same rows' lengths
    assert notebook["train_tokens_per_s"] / notebook["train_samples_per_s"] < 128
    assert notebook["eval_tokens_per_s"] / notebook["eval_samples_per_s"] == pytest.approx(
        ours["eval_tokens_per_s"] / ours["eval_samples_per_s"])
    expected = {key: ours[key] / value for key, value in notebook.items() if ours.get(key) and value}
    assert report["ratio"] == expected
    assert report["ratio"]["train_samples_per_s"] == ours["train_samples_per_s"] / notebook["train_samples_per_s"]


def test_both_recipes_are_scored_on_the_same_validation_rows_by_the_one_scoring_path(ran):
    report, _, _, recipes = ran
    notebook, ours = recipes
    assert (notebook.name, ours.name) == ("notebook", "genre_lab")
    np.testing.assert_array_equal(notebook.targets, ours.targets)
    assert notebook.targets.shape == ours.probs.shape == notebook.probs.shape == (12, 10)
    for recipe in recipes:
        names = [str(i) for i in range(10)]
        figures = score(recipe.probs, recipe.targets, Decoder(0.5), names, "val").metrics  # decode=threshold
        assert report[recipe.name]["top1_accuracy"] == pytest.approx(figures["val/top1_accuracy"])
        assert report[recipe.name]["f1_micro"] == pytest.approx(figures["val/f1_micro"])
        hits = recipe.targets[np.arange(12), recipe.probs.argmax(axis=1)]  # top-1, counted by hand
        assert report[recipe.name]["top1_accuracy"] == pytest.approx(hits.mean())
        assert ((recipe.probs > 0) & (recipe.probs < 1)).all()
    assert notebook.timed is None and ours.trained is None  # each released its timed model


def test_the_table_has_one_row_per_figure_both_recipes_have(ran):
    report, _, printed, _ = ran
    shown = [label for label, key, _ in ROWS if key in report["notebook"]]
    assert len(shown) == len(report["notebook"])  # every figure a recipe writes has a row
    body = [line for line in printed.splitlines() if line.startswith("│")]
    assert len(body) == len(shown)
    assert all(label in printed for label in shown)
    assert "tiny on cpu (32-true); sample_movies.csv" in printed
