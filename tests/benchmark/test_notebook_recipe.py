"""The notebook's recipe: the data's own rows, padded the notebook's way; real tokens counted; timed phases."""

import hydra
import numpy as np
import pytest

from genre_lab.benchmark.notebook_recipe import NotebookRecipe
from tests.benchmark.conftest import TINY_BENCH
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def notebook(bench_cfg, datamodule, tmp_path_factory):
    return NotebookRecipe(bench_cfg, datamodule.data, tmp_path_factory.mktemp("hf"))


def assert_same_rows(notebook, data, stage):
    padded, ours = notebook.sets[stage], data.splits[stage].dataset
    np.testing.assert_array_equal(padded.targets.numpy(), ours.targets)
    assert padded.input_ids.shape == (len(ours), notebook.settings.max_length)
    # the same texts: the same real tokens, whatever the padding (no sample text reaches 128 tokens)
    np.testing.assert_array_equal(padded.mask.sum(axis=1).numpy(), ours.input_ids.lengths)
    for i in (0, len(ours) - 1):
        assert padded.input_ids[i, : ours.input_ids.lengths[i]].tolist() == list(ours.input_ids[i])


def test_training_and_validation_sets_are_the_datas_rows_padded_to_max_length(notebook, datamodule):
    assert notebook.tokenize_s > 0
    for stage in ("train", "val"):
        assert_same_rows(notebook, datamodule.data, stage)


def test_a_separate_validation_file_is_padded_from_its_own_rows(tmp_path, sample_frame):
    sample_frame.iloc[:30].to_csv(tmp_path / "val.csv", index=False)
    sample_frame.iloc[30:].to_csv(tmp_path / "train.csv", index=False)
    cfg = compose_cfg("bench", [*TINY_BENCH, f"data.train_csv={tmp_path / 'train.csv'}",
                                f"data.val_csv={tmp_path / 'val.csv'}"], tmp_path)
    data = hydra.utils.instantiate(cfg.data, _convert_="all").data
    notebook = NotebookRecipe(cfg, data, tmp_path)
    assert len(notebook.sets["val"]) == 30
    assert_same_rows(notebook, data, "val")


def test_timed_training_counts_each_steps_real_tokens_and_eval_reuses_its_trainer(notebook):
    figures = notebook.train_rates(warmup=1, steps=2, repeats=2)
    # 48 rows: 5 steps of 8 (the HF loader may fetch one batch ahead, counted after them)
    assert len(notebook.collate.tokens) >= 1 + 2 * 2 and notebook.collate.rows[:5] == [8] * 5
    assert all(0 < tokens < notebook.batch_size * notebook.settings.max_length for tokens in notebook.collate.tokens)
    assert figures["train_samples_per_s"] > 0
    assert 0 < figures["train_tokens_per_s"] / figures["train_samples_per_s"] < notebook.settings.max_length
    assert figures["train_peak_rss_mib"] > 0
    figures = notebook.eval_rates(rows=10, repeats=1)
    mean_tokens = notebook.sets["val"].mask[:10].sum().item() / 10
    assert figures["eval_tokens_per_s"] / figures["eval_samples_per_s"] == pytest.approx(mean_tokens)
    notebook.release()
    assert notebook.timed is None
