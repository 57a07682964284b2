"""The TF-IDF baseline (model=tfidf_lr) as a run like any other: in a sweep with transformer runs, in compare,
and never trained over."""

import hashlib

import pandas as pd
import pytest

from genre_lab.errors import GenreLabError
from genre_lab.train import train
from tests.conftest import compose_train, genre_lab_here


def test_a_baseline_and_a_transformer_run_share_a_sweep_summary(mixed_sweep):
    summary = pd.read_csv(mixed_sweep / "sweep_summary.csv").set_index("overrides")
    assert set(summary.index) == {"model=tfidf_lr", "model=tiny"}
    assert (summary.status == "ok").all() and summary["val/f1_micro"].notna().all()
    assert summary.loc["model=tfidf_lr", "checkpoint"] == str(mixed_sweep / "0" / "checkpoints" / "model.skops")
    assert summary.loc["model=tiny", "checkpoint"] == str(mixed_sweep / "1" / "checkpoints" / "best.ckpt")


def test_compare_ranks_and_pairs_a_baseline_with_a_transformer_run(mixed_sweep, tmp_path):
    ranked = genre_lab_here("compare", str(mixed_sweep), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert sorted(table.run) == [str(mixed_sweep / "0"), str(mixed_sweep / "1")]
    assert table["val/f1_micro"].is_monotonic_decreasing
    paired = genre_lab_here("compare", str(mixed_sweep / "1"), str(mixed_sweep / "0"), "--paired", "--out",
                            str(tmp_path / "paired"), cwd=tmp_path)
    assert paired.returncode == 0, paired.stderr[-3000:]
    figures = pd.read_csv(tmp_path / "paired" / "paired.csv").set_index("figure")
    summary = pd.read_csv(mixed_sweep / "sweep_summary.csv").set_index("overrides")
    assert figures.loc["f1_micro", "B"] == pytest.approx(summary.loc["model=tfidf_lr", "val/f1_micro"])
    assert figures.loc["f1_micro", "A"] == pytest.approx(summary.loc["model=tiny", "val/f1_micro"])


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_baseline_is_never_trained_over_a_finished_baseline_run(mixed_sweep, four_csv):
    run = mixed_sweep / "0"
    before = digest(run)
    with pytest.raises(GenreLabError, match=r"already holds a trained model \['model.skops'\]; choose a new"):
        train(compose_train(["model=tfidf_lr", f"data.train_csv={four_csv}", "model.C=1"], run))
    assert digest(run) == before
