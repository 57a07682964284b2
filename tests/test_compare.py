import pandas as pd
import pytest

from genre_lab.compare import compare
from genre_lab.errors import GenreLabError
from tests.conftest import TINY_FAST, genre_lab_here


def test_compare_ranks_every_run_of_a_sweep(grid_sweep, tmp_path):
    result = genre_lab_here("compare", str(grid_sweep), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 runs ranked by val/f1_micro" in result.stdout
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["val/f1_micro"].is_monotonic_decreasing
    png = (tmp_path / "cmp" / "curves_val_f1_micro.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_compare_sorts_by_any_metric_and_explains_unknown_ones(grid_sweep):
    frame = compare([str(grid_sweep), "--sort", "val/top1_accuracy"])
    assert frame["val/top1_accuracy"].is_monotonic_decreasing
    with pytest.raises(GenreLabError, match="no run has it; available"):
        compare([str(grid_sweep), "--sort", "val/nonsense"])


def test_compare_reads_offline_wandb_summaries(tmp_path):
    run = tmp_path / "wandb" / "offline-run-1" / "files"
    run.mkdir(parents=True)
    (run.parent / "run-abc123.wandb").write_bytes(b"")
    (run / "wandb-summary.json").write_text('{"final/val/f1_micro": 0.61, "_step": 3}')
    frame = compare(["--wandb-dir", str(tmp_path / "wandb"), "--sort", "final/val/f1_micro"])
    assert frame["final/val/f1_micro"].tolist() == [0.61]


def test_a_seed_multirun_is_summarised_as_one_group_and_compared_row_by_row(four_csv, tmp_path):
    """The documented way to get mean ± std: -m seed=1,2,3; the runs share the split, so --paired works."""
    import numpy as np

    from genre_lab.stored_probs import StoredProbs

    sweep = tmp_path / "sweep"
    result = genre_lab_here("train", "-m", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                            "seed=1,2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = pd.read_csv(sweep / "sweep_seeds.csv", dtype={"config_id": str})
    assert len(groups) == 1 and groups.seeds[0] == 3 and groups.seed_values[0] == "1,2,3"
    runs = pd.read_csv(sweep / "sweep_summary.csv")
    assert groups["val/f1_micro"][0] == pytest.approx(runs["val/f1_micro"].mean())
    assert groups["val/f1_micro std"][0] == pytest.approx(runs["val/f1_micro"].std(ddof=1))
    assert "differ only in their seed" in (sweep / "sweep_summary.md").read_text()

    first, second = (StoredProbs.load(sweep / job / "val_probs.npz") for job in ("0", "1"))
    assert sorted(first.movie_ids) == sorted(second.movie_ids)  # the split is fixed by data.seed
    assert not np.array_equal(first.probs, second.probs)  # the training seed changed the model
    table = compare([str(sweep / "0"), str(sweep / "1"), "--paired", "--out", str(tmp_path / "p")]).set_index("figure")
    assert table.loc["f1_micro", "95% low"] <= table.loc["f1_micro", "B - A"] <= table.loc["f1_micro", "95% high"]
    assert (tmp_path / "p" / "paired.md").is_file()
    seeds = compare([str(sweep), "--out", str(tmp_path / "c")])
    assert set(seeds.config_id) == {groups.config_id[0]} and (tmp_path / "c" / "compare_seeds.csv").is_file()
    with pytest.raises(GenreLabError, match="two run directories"):
        compare([str(sweep / "0"), "--paired"])
