"""genre_lab's recipe: built by the builders train uses, quiet, timed on the datamodule's rows; its tokenization."""

import numpy as np
import pytest
import torch

from genre_lab.benchmark.genre_lab_recipe import GenreLabRecipe, tokenization_figures
from genre_lab.model.module import GenreClassifier


@pytest.fixture(scope="module")
def ours(bench_cfg, datamodule):
    return GenreLabRecipe(bench_cfg, datamodule)


def test_tokenization_figures_time_the_repeated_texts_and_load_the_training_files_ids(datamodule):
    data = datamodule.data
    figures = tokenization_figures(data, rows=2 * len(data.train_table.texts) + 5)
    assert figures["tokenize_rows"] == 2 * len(data.train_table.texts) + 5
    assert figures["tokenize_rows_s"] > 0 and figures["token_cache_load_s"] > 0
    assert figures["mean_tokens"] == pytest.approx(data.token_ids(data.train_table).lengths.mean())


def test_trainer_is_the_configured_one_without_logger_checkpoints_or_validation(ours):
    trainer = ours.trainer([], max_steps=3)
    assert trainer.logger is None and trainer.checkpoint_callback is None
    assert trainer.limit_val_batches == 0 and trainer.max_steps == 3
    assert str(trainer.precision) == ours.precision == "32-true"


def test_each_model_is_trains_classifier_freshly_seeded(ours, datamodule):
    first, second = ours.model(), ours.model()
    assert isinstance(first, GenreClassifier)
    assert list(first.label_space.names) == list(datamodule.data.label_space.names)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_timed_training_counts_real_tokens_and_eval_predicts_with_the_trained_model(ours, datamodule):
    figures = ours.train_rates(warmup=1, steps=2, repeats=2)
    assert figures["train_samples_per_s"] > 0 and figures["train_peak_rss_mib"] > 0
    lengths = datamodule.data.splits["train"].dataset.input_ids.lengths
    # 48 rows in batches of 32 and 16: samples are counted, so real tokens per sample lie between the shortest
    # and the longest training row
    assert ours.batch_size == 32 and len(lengths) == 48
    assert lengths.min() <= figures["train_tokens_per_s"] / figures["train_samples_per_s"] <= lengths.max()
    assert ours.trained is not None
    figures = ours.eval_rates(rows=10, repeats=1)
    mean_tokens = datamodule.data.splits["val"].dataset.input_ids.lengths[:10].mean()
    assert figures["eval_tokens_per_s"] / figures["eval_samples_per_s"] == pytest.approx(mean_tokens)
    ours.release()
    assert ours.trained is None
    assert np.isfinite(list(figures.values())).all()
